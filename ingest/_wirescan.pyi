def scan(
    body: bytes, keys: tuple[bytes, ...], decode: bool = False
) -> list[tuple[bytes, bytes, bytes, list[bytes | tuple[str, str]] | dict[str, str]]]: ...
def scan_record(
    record: bytes, keys: tuple[bytes, ...]
) -> tuple[
    str,
    dict[bytes, tuple[str, str, str]],
    list[
        tuple[
            str,
            str,
            str,
            str,
            bytes,
            int,
            int,
            int,
            str,
            str,
            list[bytes | tuple[str, str]] | dict[str, str],
            list[tuple[int, list[bytes | tuple[str, str]]]] | tuple[()],
        ]
    ],
]: ...
