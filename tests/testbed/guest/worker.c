/* Testbed worker process: the guest's ground truth for threads, open files, sockets and injected code.
 * argv: nonce tcp_port udp_port. Holds open: a file it wrote in /tmp, /proc/version (read), /dev/null, both
 * ends of a pipe, a TCP listener on 0.0.0.0:tcp_port, an ESTABLISHED loopback TCP pair to it (client and
 * accepted ends), a UDP socket bound to 0.0.0.0:udp_port, a UDP socket connected to it, a unix socket
 * pair, then (when the kernel has IPv6; fd -1 otherwise) an IPv6-only TCP listener on [::]:tcp_port and an
 * IPv6-only UDP socket bound to [::]:udp_port; maps one anonymous read-write-execute page holding RWX_CODE
 * (what malfind looks for); runs WORKER_THREADS extra threads named "pmfwork-tN". Prints one TESTBED_WORKER
 * line when all is in place; the guest's init then prints /proc facts about it (threads, fds, /proc/net).
 * Sleeps forever. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

enum { WORKER_THREADS = 3 };
/* push rbp; mov rbp,rsp; xor eax,eax; pop rbp; ret; then a tag: the first bytes malfind shows */
static const char RWX_CODE[] = "\x55\x48\x89\xe5\x31\xc0\x5d\xc3PMFRWX";

static pthread_barrier_t ready;

static void *thread_main(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "pmfwork-t%d", (int)(long)arg);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    pthread_barrier_wait(&ready);
    for (;;) sleep(60);
    return NULL;
}

static int must(int v, const char *what) {
    if (v < 0) { perror(what); exit(1); }
    return v;
}

static struct sockaddr_in addr(const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

int main(int argc, char **argv) {
    const char *nonce = argc > 1 ? argv[1] : "nononce";
    int tcp_port = argc > 2 ? atoi(argv[2]) : 7777, udp_port = argc > 3 ? atoi(argv[3]) : 7778;
    char path[128];
    snprintf(path, sizeof path, "/tmp/pmfwork-%s.txt", nonce);
    int file = must(open(path, O_RDWR | O_CREAT | O_TRUNC, 0644), "open tmp file");
    dprintf(file, "pmfwork %s\n", nonce);
    must(open("/proc/version", O_RDONLY), "open /proc/version");
    must(open("/dev/null", O_WRONLY), "open /dev/null");
    int pipefd[2];
    must(pipe(pipefd), "pipe");

    int one = 1;
    int lst = must(socket(AF_INET, SOCK_STREAM, 0), "tcp socket");
    setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in any_tcp = addr("0.0.0.0", tcp_port), lo_tcp = addr("127.0.0.1", tcp_port);
    must(bind(lst, (struct sockaddr *)&any_tcp, sizeof any_tcp), "tcp bind");
    must(listen(lst, 8), "listen");
    int cli = must(socket(AF_INET, SOCK_STREAM, 0), "tcp client socket");
    must(connect(cli, (struct sockaddr *)&lo_tcp, sizeof lo_tcp), "tcp connect");
    int acc = must(accept(lst, NULL, NULL), "accept");
    must((int)write(cli, "hello", 5), "tcp write");

    int udp = must(socket(AF_INET, SOCK_DGRAM, 0), "udp socket");
    struct sockaddr_in any_udp = addr("0.0.0.0", udp_port), lo_udp = addr("127.0.0.1", udp_port);
    must(bind(udp, (struct sockaddr *)&any_udp, sizeof any_udp), "udp bind");
    int udpc = must(socket(AF_INET, SOCK_DGRAM, 0), "udp client socket");
    must(connect(udpc, (struct sockaddr *)&lo_udp, sizeof lo_udp), "udp connect");
    must((int)send(udpc, "ping", 4, 0), "udp send");

    int unixpair[2];
    must(socketpair(AF_UNIX, SOCK_STREAM, 0, unixpair), "socketpair");

    /* IPv6 (optional: -1 when the kernel has none): v6-only, so the v4 ports above do not collide */
    struct sockaddr_in6 any6;
    memset(&any6, 0, sizeof any6);
    any6.sin6_family = AF_INET6;
    any6.sin6_addr = in6addr_any;
    int tcp6 = socket(AF_INET6, SOCK_STREAM, 0), udp6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (tcp6 >= 0) {
        setsockopt(tcp6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        any6.sin6_port = htons((unsigned short)tcp_port);
        must(bind(tcp6, (struct sockaddr *)&any6, sizeof any6), "tcp6 bind");
        must(listen(tcp6, 8), "tcp6 listen");
    }
    if (udp6 >= 0) {
        setsockopt(udp6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        any6.sin6_port = htons((unsigned short)udp_port);
        must(bind(udp6, (struct sockaddr *)&any6, sizeof any6), "udp6 bind");
    }

    char *rwx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rwx == MAP_FAILED) { perror("mmap rwx"); return 1; }
    memcpy(rwx, RWX_CODE, sizeof RWX_CODE);

    pthread_barrier_init(&ready, NULL, WORKER_THREADS + 1);
    for (long i = 0; i < WORKER_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_main, (void *)i) != 0) { fprintf(stderr, "pthread_create failed\n"); return 1; }
    }
    pthread_barrier_wait(&ready);
    printf("TESTBED_WORKER pid=%d tcp=%d udp=%d threads=%d file=%s fds=%d,%d,%d,%d,%d,%d tcp6fd=%d udp6fd=%d rwx=%#lx\n",
           (int)getpid(), tcp_port, udp_port, WORKER_THREADS + 1, path, lst, cli, acc, udp, udpc, unixpair[0], tcp6,
           udp6, (unsigned long)rwx);
    fflush(stdout);
    for (;;) sleep(60);
}
