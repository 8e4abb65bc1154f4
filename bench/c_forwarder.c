/* The floor: relay.py's raw forwarder written in C, for `relay.py --c-floor`.

   It does what the Python forwarder does and nothing more: accept nodes on
   TCP and subscribers on a Unix socket, split each node's bytes into whole
   frames by their 4-byte length header, greet a node once its first frame
   is whole, and write the frames to every subscriber. One thread, one epoll
   set, one read per readable socket. Whatever this costs per event on a
   machine is what waking, reading and writing cost there before any
   language or protocol work.

   usage: c_forwarder PORT_FILE SOCKET_PATH WELCOME_HEX
   (the TCP port it bound is written to PORT_FILE once both sockets listen) */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 65536      /* one slot per possible descriptor */
#define MAX_SUBSCRIBERS 64 /* the bench uses a handful */
#define READ_SIZE (256 * 1024)

enum kind { UNUSED, NODE_LISTENER, CLIENT_LISTENER, NODE, SUBSCRIBER };

struct peer {
    enum kind kind;
    int greeted;
    unsigned char *pending; /* the start of a frame whose end has not arrived */
    size_t pending_len;
};

static struct peer peers[MAX_FDS];
static int subscribers[MAX_SUBSCRIBERS];
static int subscriber_count;
static unsigned char welcome[256];
static size_t welcome_len;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void write_all(int fd, const unsigned char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n <= 0)
            return; /* a subscriber that went away: the bench is ending */
        data += n;
        len -= (size_t)n;
    }
}

static void watch(int epoll, int fd, enum kind kind) {
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    if (fd >= MAX_FDS || epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0)
        die("watch");
    peers[fd].kind = kind;
}

static void drop(int epoll, int fd) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(peers[fd].pending);
    peers[fd] = (struct peer){0};
    for (int i = 0; i < subscriber_count; i++)
        if (subscribers[i] == fd)
            subscribers[i] = subscribers[--subscriber_count];
}

/* Forward the whole frames among a node's bytes; keep the rest for the next read. */
static void forward(int fd, const unsigned char *data, size_t len) {
    struct peer *node = &peers[fd];
    unsigned char *joined = NULL;
    if (node->pending_len) {
        joined = malloc(node->pending_len + len);
        if (!joined)
            die("malloc");
        memcpy(joined, node->pending, node->pending_len);
        memcpy(joined + node->pending_len, data, len);
        data = joined;
        len += node->pending_len;
    }
    size_t end = 0;
    while (len - end >= 4) {
        size_t frame = (size_t)data[end] << 24 | data[end + 1] << 16 | data[end + 2] << 8 | data[end + 3];
        if (len - end - 4 < frame)
            break;
        end += 4 + frame;
    }
    if (end && !node->greeted) {
        write_all(fd, welcome, welcome_len);
        node->greeted = 1;
    }
    for (int i = 0; end && i < subscriber_count; i++)
        write_all(subscribers[i], data, end);
    unsigned char *rest = len > end ? malloc(len - end) : NULL;
    if (rest)
        memcpy(rest, data + end, len - end);
    free(node->pending);
    node->pending = rest;
    node->pending_len = len - end;
    free(joined);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT_FILE SOCKET_PATH WELCOME_HEX\n", argv[0]);
        return 2;
    }
    for (const char *hex = argv[3]; hex[0] && hex[1] && welcome_len < sizeof welcome; hex += 2) {
        unsigned byte;
        if (sscanf(hex, "%2x", &byte) != 1)
            return 2;
        welcome[welcome_len++] = (unsigned char)byte;
    }

    int one = 1;
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t address_len = sizeof address;
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(tcp, (struct sockaddr *)&address, sizeof address) < 0 || listen(tcp, 4096) < 0)
        die("tcp");
    getsockname(tcp, (struct sockaddr *)&address, &address_len);

    int unix_socket = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un path = {.sun_family = AF_UNIX};
    strncpy(path.sun_path, argv[2], sizeof path.sun_path - 1);
    if (bind(unix_socket, (struct sockaddr *)&path, sizeof path) < 0 || listen(unix_socket, 64) < 0)
        die("unix");

    int epoll = epoll_create1(0);
    watch(epoll, tcp, NODE_LISTENER);
    watch(epoll, unix_socket, CLIENT_LISTENER);
    FILE *port_file = fopen(argv[1], "w");
    if (!port_file)
        die(argv[1]);
    fprintf(port_file, "%d", ntohs(address.sin_port));
    fclose(port_file);

    static unsigned char buffer[READ_SIZE];
    struct epoll_event ready[256];
    for (;;) {
        int count = epoll_wait(epoll, ready, 256, -1);
        for (int i = 0; i < count; i++) {
            int fd = ready[i].data.fd;
            enum kind kind = peers[fd].kind;
            if (kind == NODE_LISTENER || kind == CLIENT_LISTENER) {
                int peer = accept(fd, NULL, NULL);
                if (peer < 0)
                    continue;
                if (kind == NODE_LISTENER) {
                    setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    watch(epoll, peer, NODE);
                } else if (subscriber_count < MAX_SUBSCRIBERS) {
                    watch(epoll, peer, SUBSCRIBER);
                    subscribers[subscriber_count++] = peer;
                } else {
                    close(peer);
                }
                continue;
            }
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n <= 0)
                drop(epoll, fd);
            else if (kind == NODE)
                forward(fd, buffer, (size_t)n);
            /* a subscriber's hello and subscribe are read and ignored, as in relay.py */
        }
    }
}
