/* Ping-pong between MPI ranks 0 and 1, for integration/mpi.sh.
 *
 * Each rank first prints where it runs: "where RANK host=UTS-NAME
 * root=DEV:INO user=NS mnt=NS net=NS", the identity of "/" and of its
 * namespaces, so that the caller can tell a container from the host and
 * one node from the other. Then the ranks measure, REPS times each, each
 * round trip timed on its own:
 *   latency: ROUNDS round trips of LAT_BYTES; half the median round trip, in us;
 *   bandwidth: BW_ROUNDS round trips of BW_BYTES; the bytes of a round trip
 *     (both ways) over the fastest round trip, in MB/s;
 * and rank 0 prints one line per repetition, and the medians of those:
 *   "result lat_us=MEDIAN bw_MBps=MEDIAN".
 * Why not the mean of a repetition: on a shared machine (and TCP between
 * network namespaces) a few round trips stall for milliseconds. A stall
 * moves the mean of a whole repetition; the median round trip of a small
 * message hardly. A large message's round trips stall often enough here to
 * move their median too (a repetition's median swings between 1.5 GB/s and
 * 60 MB/s); its fastest round trip, what the path carries when nothing
 * stalls it, varies much less. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { LAT_BYTES = 8, ROUNDS = 200, BW_BYTES = 1 << 20, BW_ROUNDS = 20, REPS = 9, WARMUP = 50 };

static unsigned long ns_id(const char *name)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/self/ns/%s", name);
    return stat(path, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* rounds round trips of bytes between ranks 0 and 1, each timed on its
 * own, into times[], sorted (on rank 0). */
static void pingpong(int rank, char *buf, int bytes, int rounds, double *times)
{
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < rounds; i++) {
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
        times[i] = MPI_Wtime() - t0;
    }
    qsort(times, rounds, sizeof *times, cmp);
}

int main(int argc, char **argv)
{
    int rank, size;
    char host[256] = "";
    struct stat root;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host - 1);
    if (stat("/", &root) != 0)
        memset(&root, 0, sizeof root);
    printf("where %d host=%s root=%lu:%lu user=%lu mnt=%lu net=%lu\n", rank, host,
           (unsigned long)root.st_dev, (unsigned long)root.st_ino, ns_id("user"), ns_id("mnt"), ns_id("net"));
    fflush(stdout);
    if (size != 2) {
        if (rank == 0)
            fprintf(stderr, "pingpong: needs 2 ranks, has %d\n", size);
        MPI_Finalize();
        return 2;
    }

    char *buf = calloc(1, BW_BYTES);
    double lat[REPS], bw[REPS], times[ROUNDS > WARMUP ? ROUNDS : WARMUP];
    pingpong(rank, buf, LAT_BYTES, WARMUP, times);
    pingpong(rank, buf, BW_BYTES, WARMUP, times);
    for (int r = 0; r < REPS; r++) {
        pingpong(rank, buf, LAT_BYTES, ROUNDS, times);
        lat[r] = median(times, ROUNDS) / 2 * 1e6;
        pingpong(rank, buf, BW_BYTES, BW_ROUNDS, times);
        bw[r] = 2.0 * BW_BYTES / times[0] / 1e6;
        if (rank == 0)
            printf("rep %d lat_us=%.3f bw_MBps=%.1f\n", r, lat[r], bw[r]);
    }
    if (rank == 0)
        printf("result lat_us=%.3f bw_MBps=%.1f\n", median(lat, REPS), median(bw, REPS));
    free(buf);
    MPI_Finalize();
    return 0;
}
