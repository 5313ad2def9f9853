import Foundation
import VidrdProtocol

/// Where a client connects, kept so that a session can reconnect on its own.
struct Endpoint: Sendable {
    var host: String
    var port: UInt16
    var token: [UInt8]?
    var options: ClientOptions
}

/// One `VidrdSession`'s tie to the server: the connection and stream id it currently uses, its
/// latest continuation, and what the consumer has already been given. When the server goes away
/// mid-stream it reconnects (`ResumePolicy`), presents the continuation in a new OPEN_SESSION and
/// drops whatever the resumed server sends again (the clip in progress is generated anew, bit
/// for bit the same), so the consumer's events run on without a gap or a repeat.
///
/// Events of a connection arrive on its reader thread; each route is tagged with the generation
/// it was opened in, so a late event of a replaced connection is ignored.
final class SessionLink: @unchecked Sendable {
    let endpoint: Endpoint
    let policy: ResumePolicy
    let flow: FlowControl
    /// The request as first sent (`resumable` set when the policy resumes).
    let request: OpenSession
    let output: AsyncThrowingStream<SessionEvent, Error>.Continuation

    private enum Phase { case opening, live, reconnecting, done }

    private struct State {
        var core: ClientCore
        var id: UInt32?
        var generation = 0
        var phase = Phase.opening
        var opened: CheckedContinuation<SessionOpened, Error>?
        var cancelled = false
        /// The latest continuation (SESSION_OPENED's, then each CLIP_END's).
        var token: [UInt8]?
        var clipEndsReceived = 0
        /// The last CLIP_START and the next frame number handed to the consumer.
        var lastClipStarted: UInt32?
        var nextFrameNumber: UInt64?
        var attempts = 0
        /// What ended the connection the link is replacing: the session's error if it cannot.
        var interruption: VidrdError?
        var resumptions = 0
        /// Connections this link opened itself (closed when it is done or moves on).
        var owned: ClientCore?
    }

    private let state: Locked<State>

    init(core: ClientCore, endpoint: Endpoint, request: OpenSession, policy: ResumePolicy, flow: FlowControl,
         output: AsyncThrowingStream<SessionEvent, Error>.Continuation) {
        self.endpoint = endpoint
        self.policy = policy
        self.flow = flow
        self.request = request
        self.output = output
        state = Locked(State(core: core))
    }

    var id: UInt32 { state.withLock { $0.id ?? 0 } }
    var resumptions: Int { state.withLock { $0.resumptions } }

    // MARK: - Opening

    /// Sends the first OPEN_SESSION and waits for SESSION_OPENED (or the rejection).
    func open() async throws -> SessionOpened {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<SessionOpened, Error>) in
                let failure: Error? = state.withLock { s in
                    s.opened = c
                    var req = request
                    req.initialCredits = flow.initialCredits
                    do {
                        s.id = try s.core.open(req, deliver: route(generation: 0))
                        if s.cancelled, let id = s.id { s.core.cancel(id) }
                        return nil
                    } catch {
                        s.opened = nil
                        s.phase = .done
                        return error
                    }
                }
                if let failure { c.resume(throwing: failure) }
            }
        } onCancel: {
            cancel()
        }
    }

    private func route(generation: Int) -> @Sendable (RouteEvent) -> Void {
        { [weak self] event in self?.handle(event, generation: generation) }
    }

    // MARK: - Events

    private func handle(_ event: RouteEvent, generation: Int) {
        enum Next { case nothing, yield(SessionEvent), opened(CheckedContinuation<SessionOpened, Error>?, SessionOpened),
                    failOpen(CheckedContinuation<SessionOpened, Error>, Error), finish(Error?), reconnect(VidrdError) }
        let next: Next = state.withLock { s in
            guard generation == s.generation, s.phase != .done else { return .nothing }
            switch event {
            case .opened(let p):
                if p.resumable == true, let c = p.continuation { s.token = c }
                let first = s.phase == .opening
                if !first { s.resumptions += 1 }
                s.phase = .live
                s.attempts = 0
                s.interruption = nil
                let waiter = s.opened
                s.opened = nil
                return first ? .opened(waiter, p) : .nothing
            case .event(let e):
                return filter(e, &s).map(Next.yield) ?? .nothing
            case .ended(let error):
                if s.phase == .opening, let waiter = s.opened {
                    s.opened = nil
                    s.phase = .done
                    return .failOpen(waiter, error ?? CancellationError())
                }
                guard let error, !s.cancelled else {
                    s.phase = .done
                    return .finish(nil)
                }
                guard policy.maxAttempts > 0, s.token != nil, ResumePolicy.isResumable(error) else {
                    s.phase = .done
                    return .finish(error)
                }
                s.phase = .reconnecting
                if s.interruption == nil { s.interruption = error }
                return .reconnect(error)
            }
        }
        switch next {
        case .nothing: break
        case .yield(let e): output.yield(e)
        case .opened(let waiter, let p): waiter?.resume(returning: p)
        case .failOpen(let waiter, let error): waiter.resume(throwing: error)
        case .finish(let error): finish(error)
        case .reconnect(let error): scheduleAttempt(after: error)
        }
    }

    /// What the consumer gets of a server event: nothing that it already had.
    private func filter(_ e: SessionEvent, _ s: inout State) -> SessionEvent? {
        switch e {
        case .clipStarted(let m):
            if let last = s.lastClipStarted, m.clipIndex <= last { return nil }
            s.lastClipStarted = m.clipIndex
        case .frame(let f):
            if let next = s.nextFrameNumber, f.frameNumber < next { return nil }
            s.nextFrameNumber = f.frameNumber + 1
        case .clipEnded(let m):
            s.clipEndsReceived += 1
            if let c = m.continuation { s.token = c }
        case .progress:
            break
        }
        return e
    }

    // MARK: - Resuming

    private func scheduleAttempt(after error: VidrdError) {
        let (attempt, interruption): (Int?, VidrdError?) = state.withLock { s in
            s.attempts += 1
            return (s.attempts <= policy.maxAttempts ? s.attempts : nil, s.interruption)
        }
        guard let attempt else {
            // The interruption says what happened; the last attempt says why it could not be bridged.
            var e = interruption ?? error
            e.message += "; not resumed after \(policy.maxAttempts) attempt\(policy.maxAttempts == 1 ? "" : "s"): \(error)"
            return finish(e)
        }
        let wait = policy.delay(attempt: attempt, retryAfterMs: error.retryAfterMs, random: Double.random(in: 0...1))
        let thread = Thread { [self] in
            Thread.sleep(forTimeInterval: wait)
            self.attempt()
        }
        thread.name = "vidrd-client-resume"
        thread.start()
    }

    /// Connects, then opens the session from its continuation with the credits the lost server
    /// still owed (granted minus clips whose end arrived: the clip in progress is made again).
    private func attempt() {
        guard state.withLock({ !$0.cancelled && $0.phase == .reconnecting }) else { return }
        let core: ClientCore
        do {
            core = try ClientCore.connect(host: endpoint.host, port: endpoint.port, token: endpoint.token, options: endpoint.options)
        } catch {
            // A refusal at HELLO with a retry hint (a full or draining node) is worth another try.
            if ResumePolicy.isResumable(error) || error.retryAfterMs != nil {
                scheduleAttempt(after: error)
            } else {
                finish(error)
            }
            return
        }
        let (stale, failure): (ClientCore?, Error?) = state.withLock { s in
            guard !s.cancelled, s.phase == .reconnecting, let token = s.token else { return (core, nil) }
            s.generation += 1
            var req = request
            req.continuation = token
            req.initialCredits = UInt32(clamping: max(0, min(flow.granted - s.clipEndsReceived, Int(ProtocolLimits.maxCredits))))
            do {
                s.id = try core.open(req, deliver: route(generation: s.generation))
            } catch {
                return (core, error)
            }
            let previous = s.owned
            s.owned = core
            s.core = core
            return (previous, nil)
        }
        stale?.closeInBackground()
        if let failure {
            if let e = failure as? VidrdError, ResumePolicy.isResumable(e) { scheduleAttempt(after: e) } else { finish(failure) }
        }
    }

    // MARK: - Consumer side

    /// The consumer received a CLIP_END: grant the next clip on the current connection. Under the
    /// link's lock, so a reconnection counts the grant exactly once (in its initial credits, or
    /// as this PULL).
    func clipConsumed() -> Bool {
        let (done, endNow): (Bool, Bool) = state.withLock { s in
            let (pull, done) = flow.clipConsumed()
            if done {
                s.cancelled = true
                if let id = s.id, s.phase == .live { s.core.cancel(id) }
                return (true, s.phase == .reconnecting)
            }
            if pull > 0, s.phase == .live, let id = s.id { s.core.pull(id, credits: pull) }
            return (false, false)
        }
        if endNow { finish(nil) }
        return done
    }

    /// CANCEL on the current connection; while reconnecting, the sequence just ends.
    func cancel() {
        let endNow: Bool = state.withLock { s in
            guard !s.cancelled else { return false }
            s.cancelled = true
            if let id = s.id, s.phase == .live || s.phase == .opening { s.core.cancel(id) }
            return s.phase == .reconnecting
        }
        if endNow { finish(nil) }
    }

    private func finish(_ error: Error?) {
        let owned: ClientCore? = state.withLock { s in
            s.phase = .done
            defer { s.owned = nil }
            return s.owned
        }
        if let error { output.finish(throwing: error) } else { output.finish() }
        owned?.closeInBackground()
    }
}
