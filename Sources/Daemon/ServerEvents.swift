import VidrdProtocol

/// What the transport tells `ServerStateMachine`: something happened on a socket, a worker, the
/// sweep timer or a signal. Each comes with the loop's monotonic time (`handle(_:now:)`).
enum ServerInput {
    enum ReadEnd: Equatable {
        case eof
        /// A read error, as the transport describes it (log text only).
        case error(String)
    }

    enum WriteStatus: Equatable {
        case ok
        /// The write was dropped because the socket closed first.
        case cancelled
        /// The socket reported an error for a write in progress.
        case failed(String)
        /// The transport could not even queue the write.
        case rejected(String)
    }

    enum Shutdown: Equatable { case drain, immediate }

    /// A connection was accepted; `conn` is the id the transport chose for it.
    case accepted(ConnectionID, peer: String)
    case received(ConnectionID, [UInt8])
    case readEnded(ConnectionID, ReadEnd)
    /// A `.write` of `count` bytes completed (or failed).
    case written(ConnectionID, count: Int, WriteStatus)
    /// The `.halfClose` finished (`ok`) or could not be started.
    case halfClosed(ConnectionID, ok: Bool)
    /// The `.close` finished: the transport has released the socket.
    case closed(ConnectionID)
    case workerEvents([WorkerEvent])
    /// The sweep timer (every `ServerStateMachine.tickIntervalMs`).
    case tick
    /// `Daemon.shutdown` (from any thread, delivered on the loop).
    case shutdownRequested(Shutdown)
    /// SIGINT or SIGTERM, by name.
    case signal(String)
}

/// What `ServerStateMachine` asks the transport to do, in order.
enum ServerAction {
    /// Queue bytes on the socket; report `.written` when done.
    case write(ConnectionID, [UInt8])
    case startReading(ConnectionID)
    case stopReading(ConnectionID)
    /// Shut our side down once the queued writes are flushed; report `.halfClosed`.
    case halfClose(ConnectionID)
    /// Close the socket now (pending writes are dropped); report `.closed`.
    case close(ConnectionID)
    /// Hand a clip job to the executor.
    case submit(ClipJob)
    /// Ask the job running or queued for this generator to stop at its next step or frame.
    case cancel(SessionGenerator)
    case closeListener
    /// Nothing is left: stop the executor and close the loop's own handles so the loop ends.
    case stop
}
