"""fs.readahead, in Python: asks for a block past the end of the file.
Expected: the validator refuses it (invalid_result); the default answers."""


def readahead(file_blocks: int, out: list[int]) -> int:
    out[0] = file_blocks + 5
    return 1
