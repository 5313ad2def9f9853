/// Where the server sends clip jobs. The server submits a session's next clip as soon as the
/// session may have one (docs/DAEMON.md, "Scheduling") and keeps at most one job per session in
/// flight, so an executor may queue any number of jobs; how it orders or batches them is its own
/// business. Results come back as `WorkerEvent`s through the `Mailbox` it was made with, each job
/// ending with exactly one `.finished`.
protocol ClipExecutor: AnyObject, Sendable {
    /// Queues a job; never blocks the loop thread.
    func submit(_ job: ClipJob)
    /// Lets the jobs already running finish and waits for the executor's threads to exit.
    func stopAndJoin()
}
