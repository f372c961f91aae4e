/* Asks the allocator it was linked with who it is: jemalloc answers with its version and the
 * page size it was configured for (lg_page), the system allocator does not answer at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jemalloc/jemalloc.h>

int main(void) {
    const char *version;
    size_t page, len = sizeof(version);
    if (mallctl("version", &version, &len, NULL, 0) != 0) {
        fprintf(stderr, "not jemalloc\n");
        return 1;
    }
    len = sizeof(page);
    mallctl("arenas.page", &page, &len, NULL, 0);
    /* Real allocation work through the linked allocator. */
    size_t total = 0;
    for (int i = 1; i <= 10000; i++) {
        char *block = malloc((size_t)i * 16);
        memset(block, i & 0xff, (size_t)i * 16);
        total += (unsigned char)block[i];
        free(block);
    }
    printf("jemalloc %s page %zu checksum %zu\n", version, page, total);
    return 0;
}
