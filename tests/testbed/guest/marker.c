/* Testbed marker process: 16 locked anonymous pages, each starting with "TBMARK:<nonce>:NN" (64 bytes, NUL
 * padded) over a known 8-byte pattern, (0x5445535442454400 | page) ^ offset. Prints each page's virtual
 * address and the physical one the kernel reports in /proc/self/pagemap (ground truth for user-space
 * translation), then bumps a heartbeat counter at offset 64 of page 0 once a second, or without pause when
 * argv[2] is "busy". Built statically for both guest architectures (gcc -static [-m32]). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { PAGES = 16, PAGE_SIZE_ = 4096 };

static uint64_t pattern(unsigned page, unsigned off) { return (0x5445535442454400ULL | page) ^ off; }

int main(int argc, char **argv) {
    const char *nonce = argc > 1 ? argv[1] : "nononce";
    int busy = argc > 2 && strcmp(argv[2], "busy") == 0;
    unsigned char *area = mmap(NULL, PAGES * PAGE_SIZE_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) { perror("marker: mmap"); return 1; }
    for (unsigned i = 0; i < PAGES; i++) {
        unsigned char *pg = area + i * PAGE_SIZE_;
        for (unsigned off = 0; off < PAGE_SIZE_; off += 8) {
            uint64_t v = pattern(i, off);
            memcpy(pg + off, &v, sizeof v);
        }
        char head[64] = {0};
        snprintf(head, sizeof head, "TBMARK:%s:%02u", nonce, i);
        memcpy(pg, head, sizeof head);
    }
    mlock(area, PAGES * PAGE_SIZE_);
    printf("TESTBED_MARKER_PROC pid=%d va=0x%lx npages=%d nonce=%s\n", (int)getpid(), (unsigned long)(uintptr_t)area,
           PAGES, nonce);
    int pm = open("/proc/self/pagemap", O_RDONLY);
    for (unsigned i = 0; i < PAGES; i++) {
        uintptr_t va = (uintptr_t)(area + i * PAGE_SIZE_);
        uint64_t entry = 0;
        if (pm < 0 || pread(pm, &entry, sizeof entry, (off_t)(va / PAGE_SIZE_) * 8) != sizeof entry) entry = 0;
        uint64_t pa = (entry & ((1ULL << 55) - 1)) * PAGE_SIZE_;  /* bits 0-54: frame number */
        printf("TESTBED_MARKER_PAGE i=%u va=0x%lx pa=0x%llx present=%u\n", i, (unsigned long)va,
               (unsigned long long)pa, (unsigned)(entry >> 63));
    }
    if (pm >= 0) close(pm);
    int on_stack = 0;
    printf("TESTBED_MARKER_ADDRS main=0x%lx stack=0x%lx\n", (unsigned long)(uintptr_t)&main,
           (unsigned long)(uintptr_t)&on_stack);
    fflush(stdout);
    volatile uint64_t *beat = (volatile uint64_t *)(area + 64);
    for (*beat = 0;; (*beat)++)
        if (!busy) sleep(1);
}
