#ifndef VIDRD_PARALLEL_H
#define VIDRD_PARALLEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* Runs one chunk of a parallel loop: `chunk` in 0..<chunks. */
typedef void (*vidrd_parallel_body)(void *context, long chunk);

/* vidrd_parallel_run's answers when it ran nothing. BUSY: the pool is running another thread's
 * loop, or it has no helper threads; the caller may run the chunks elsewhere. NESTED: the caller
 * is itself running a chunk of a loop, whose other chunks already occupy the cores; it should run
 * the chunks itself. */
#define VIDRD_PARALLEL_BUSY 1
#define VIDRD_PARALLEL_NESTED 2

/* Runs body(context, 0..<chunks) on the calling thread and the pool's helper threads, each chunk
 * exactly once, and returns 0 when all are done; or BUSY or NESTED, having run none. Chunks
 * may run in any order and on any of the threads. */
int vidrd_parallel_run(long chunks, vidrd_parallel_body body, void *context);

/* The pool's helper threads (starting them if needed): one fewer than the cores. */
int vidrd_parallel_helpers(void);

/* Sequentially consistent add (returns the new value) and load of a counter that several
 * threads share (the runtime's count of calls sharing the cores). */
long vidrd_atomic_add(long *counter, long delta);
long vidrd_atomic_load(const long *counter);

#ifdef __cplusplus
}
#endif

#endif
