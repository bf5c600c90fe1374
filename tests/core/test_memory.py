import platform

from flanlab.core.memory import release_freed_memory


def test_freed_heap_is_returned_where_glibc_allows_it():
    # glibc has malloc_trim; other C libraries (macOS, musl) have no such call and nothing is done.
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    blocks = [bytes(4096) for _ in range(10_000)]  # ~40 MB from malloc, then freed
    del blocks
    assert release_freed_memory() is glibc
