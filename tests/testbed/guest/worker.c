/* Testbed worker process: the guest's ground truth for threads, open files and sockets.
 * argv: nonce tcp_port udp_port. Holds open: a file it wrote in /tmp, /proc/version (read), /dev/null, both
 * ends of a pipe, a TCP listener on 0.0.0.0:tcp_port, an ESTABLISHED loopback TCP pair to it (client and
 * accepted ends), a UDP socket bound to 0.0.0.0:udp_port, a UDP socket connected to it, and a unix socket
 * pair; runs WORKER_THREADS extra threads named "pmfwork-tN". Prints one TESTBED_WORKER line when all is in
 * place; the guest's init then prints /proc facts about it (threads, fds, /proc/net). Sleeps forever. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

enum { WORKER_THREADS = 3 };

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

    pthread_barrier_init(&ready, NULL, WORKER_THREADS + 1);
    for (long i = 0; i < WORKER_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_main, (void *)i) != 0) { fprintf(stderr, "pthread_create failed\n"); return 1; }
    }
    pthread_barrier_wait(&ready);
    printf("TESTBED_WORKER pid=%d tcp=%d udp=%d threads=%d file=%s fds=%d,%d,%d,%d,%d,%d\n", (int)getpid(), tcp_port,
           udp_port, WORKER_THREADS + 1, path, lst, cli, acc, udp, udpc, unixpair[0]);
    fflush(stdout);
    for (;;) sleep(60);
}
