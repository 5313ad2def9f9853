import Foundation
import VidrdProtocol

/// The plain callback form for tools that are not async: every call blocks the calling thread,
/// and `stream` invokes its callback on the calling thread for each event.
///
/// ```swift
/// let client = try VidrdBlockingClient.connect(port: 7878)
/// try client.stream(OpenSession(prompt: "a red ball"), maxClips: 3) { event in
///     if case .frame(let f) = event { save(f.webp) }
///     return true            // false cancels the session
/// }
/// client.close()
/// ```
public final class VidrdBlockingClient: Sendable {
    let core: ClientCore

    public var version: UInt16 { core.ack.version }
    public var serverInfo: ServerInfo { core.ack.info }
    public var strategies: StrategyList { core.ack.strategies }

    private init(core: ClientCore) { self.core = core }

    deinit { core.closeInBackground() }

    public static func connect(
        host: String = "127.0.0.1", port: UInt16 = 7878, token: String? = nil, options: ClientOptions = ClientOptions()
    ) throws(VidrdError) -> VidrdBlockingClient {
        VidrdBlockingClient(core: try ClientCore.connect(host: host, port: port, token: token.map { Array($0.utf8) }, options: options))
    }

    public func info() throws(VidrdError) -> ServerInfo {
        let box = ResultBox<ServerInfo>()
        core.requestInfo { box.set($0) }
        return try box.wait()
    }

    public func listStrategies() throws(VidrdError) -> StrategyList {
        let box = ResultBox<StrategyList>()
        core.requestStrategies { box.set($0) }
        return try box.wait()
    }

    /// Opens a session and delivers its events to `onEvent` on this thread until `onEvent`
    /// returns false (the session is cancelled), `maxClips` clips have ended, or the session
    /// ends. Returns normally in the first two cases; throws `VidrdError` if the server ends it.
    /// `onOpened` receives the effective parameters first.
    public func stream(
        _ request: OpenSession, prefetch: UInt32 = 2, maxClips: Int? = nil, onOpened: (SessionOpened) -> Void = { _ in },
        onEvent: (SessionEvent) -> Bool
    ) throws(VidrdError) {
        let flow = FlowControl(prefetch: max(prefetch, 1), maxClips: maxClips)
        var req = request
        req.initialCredits = flow.initialCredits
        let queue = EventQueue()
        let id = try core.open(req) { queue.push($0) }
        var cancelled = false
        defer { if !cancelled { core.cancel(id) } }
        while true {
            switch queue.pop() {
            case .opened(let p):
                onOpened(p)
            case .event(let e):
                if cancelled { continue }
                if !onEvent(e) {
                    cancelled = true
                    core.cancel(id)
                    continue
                }
                if case .clipEnded = e {
                    let (pull, done) = flow.clipConsumed()
                    if done {
                        cancelled = true
                        core.cancel(id)
                    } else if pull > 0 {
                        core.pull(id, credits: pull)
                    }
                }
            case .ended(let error):
                cancelled = true
                if let error { throw error }
                return
            }
        }
    }

    /// Sends CLOSE(OK) and releases the connection.
    public func close() { core.close() }
}

/// A one-shot result handed from the reader thread to a waiting caller.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let value = Locked<Result<T, VidrdError>?>(nil)

    func set(_ r: Result<T, VidrdError>) {
        value.withLock { $0 = r }
        done.signal()
    }

    func wait() throws(VidrdError) -> T {
        done.wait()
        return try value.withLock { $0! }.get()
    }
}

/// Reader thread → caller thread queue of one session's events. Bounded in practice by the
/// session's credits (at most `prefetch` clips are ever granted ahead of the consumer).
final class EventQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [RouteEvent] = []
    private var head = 0

    func push(_ e: RouteEvent) {
        condition.lock()
        items.append(e)
        condition.signal()
        condition.unlock()
    }

    func pop() -> RouteEvent {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count { condition.wait() }
        let e = items[head]
        head += 1
        if head > 1024, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }
}
