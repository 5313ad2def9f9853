import Logging
import VidrdProtocol

/// The messages a ready connection may send, the handshake, sessions and their clips: the
/// protocol half of `ServerStateMachine` (connections and timers are in ServerStateMachine.swift).
extension ServerStateMachine {
    // MARK: - Messages

    func handleMessage(_ conn: Connection, _ envelope: Envelope) {
        let id = envelope.stream
        if conn.state == .handshake {
            handshake(conn, envelope)
            return
        }
        switch envelope.message {
        case .hello:
            fail(conn, .failedPrecondition, "HELLO after the handshake")
        case .ping(let nonce):
            send(conn, .pong(nonce: nonce))
        case .pong:
            break
        case .infoRequest:
            send(conn, .info(info()))
        case .listStrategies:
            send(conn, .strategies(strategyList))
        case .close(let c):
            logger.debug("client closed", metadata: ["conn": "\(conn.id)", "code": "\(c.code.name)"])
            endSessionsSilently(conn)
            send(conn, .close(Close(code: .ok)))
            finish(conn)
        case .error(let e) where e.fatal:
            logger.info("client sent a fatal error", metadata: ["conn": "\(conn.id)", "code": "\(e.code.name)", "error": "\(e.message)"])
            closeHandle(conn, reason: "fatal error from the client")
        case .openSession(let request):
            openSession(conn, id, request)
        case .pull(let credits):
            guard let s = lookup(conn, id, "PULL") else { return }
            let total = UInt64(s.credits) + UInt64(credits)
            guard total <= UInt64(limits.maxCredits) else {
                endSession(s, .invalidArgument, "credits would be \(total); max_credits = \(limits.maxCredits)")
                return
            }
            s.credits = UInt32(total)
            schedule()
        case .cancel:
            guard let s = lookup(conn, id, "CANCEL") else { return }
            endSession(s, .cancelled, "cancelled by the client")
        case .error(let e):
            guard let s = lookup(conn, id, "ERROR") else { return }
            logger.debug("client ended a session with an error", metadata: ["conn": "\(conn.id)", "session": "\(id)", "code": "\(e.code.name)"])
            endSession(s, .cancelled, "cancelled by the client (\(e.code.name))")
        case .helloAck, .info, .strategies, .sessionOpened, .clipStart, .progress, .frame, .clipEnd:
            // The server-role decoder rejects these before they get here.
            fail(conn, .invalidArgument, "\(envelope.message.frameType.name) may not be sent to a server")
        }
    }

    /// The open session a PULL/CANCEL names; nil if it has ended (ignored). An id never opened
    /// fails the connection.
    private func lookup(_ conn: Connection, _ id: UInt32, _ what: String) -> Session? {
        if let s = conn.open[id] { return s }
        if id > conn.highestStream {
            fail(conn, .failedPrecondition, "\(what) for session \(id), which was never opened", stream: id)
        }
        return nil
    }

    private func handshake(_ conn: Connection, _ envelope: Envelope) {
        // Every refusal here is a rejected connection (counted by code) before it fails.
        func fail(_ conn: Connection, _ code: StatusCode, _ message: String, stream: UInt32 = 0, retryAfterMs: UInt32? = nil) {
            metrics.rejected(code, at: .connection)
            self.fail(conn, code, message, stream: stream, retryAfterMs: retryAfterMs)
        }
        guard case .hello(let hello) = envelope.message else {
            fail(conn, .failedPrecondition, "the first frame must be HELLO, got \(envelope.message.frameType.name)", stream: envelope.stream)
            return
        }
        let supported = VidrdProtocolVersion.supported
        guard let version = VidrdProtocolVersion.negotiate(clientMin: hello.minVersion, clientMax: hello.maxVersion) else {
            fail(
                conn, .unimplemented,
                "no common protocol version: the client offers \(hello.minVersion)...\(hello.maxVersion), this server speaks \(supported.lowerBound)...\(supported.upperBound)"
            )
            return
        }
        if let token = configuration.token {
            guard let offered = hello.token else {
                fail(conn, .unauthenticated, "this server requires a token")
                return
            }
            guard constantTimeEquals(offered, token) else {
                fail(conn, .unauthenticated, "bad token")
                return
            }
        }
        if draining {
            fail(conn, .unavailable, "server shutting down")
            return
        }
        guard readyConnections < configuration.maxConnections else {
            fail(conn, .resourceExhausted, "the server has \(readyConnections) connections, its limit", retryAfterMs: Self.retryAfterMs)
            return
        }
        conn.encoder.maxPayload = Int(hello.maxPayload ?? UInt32(ProtocolLimits.defaultMaxPayload))
        conn.clientName = hello.clientName
        conn.state = .ready
        readyConnections += 1
        logger.info(
            "connection ready",
            metadata: ["conn": "\(conn.id)", "peer": "\(conn.peer)", "client": "\(hello.clientName ?? "")", "version": "\(version)"])
        send(conn, .helloAck(HelloAck(version: version, info: info(), strategies: strategyList)))
    }

    func info() -> ServerInfo {
        ServerInfo(
            serverName: configuration.serverName, modelName: engine.modelName, limits: limits,
            activeSessions: UInt32(sessions.count), activeConnections: UInt32(liveConnectionCount),
            uptimeMs: nowMs &- startedAtMs, clipsGenerated: clipsGenerated, framesSent: framesSent,
            queuedBytes: UInt64(max(queuedBytesTotal, 0)))
    }

    // MARK: - Sessions

    private func openSession(_ conn: Connection, _ id: UInt32, _ request: OpenSession) {
        guard id > conn.highestStream else {
            fail(conn, .invalidArgument, "session id \(id) is not greater than \(conn.highestStream), the highest used on this connection", stream: id)
            return
        }
        conn.highestStream = id
        func reject(_ code: StatusCode, _ message: String) {
            metrics.rejected(code, at: .session)
            logger.info("session rejected", metadata: ["conn": "\(conn.id)", "session": "\(id)", "code": "\(code.name)", "error": "\(message)"])
            send(conn, .error(ErrorMessage(code: code, message: clippedUTF8(message, maxBytes: ProtocolLimits.maxMessageTextBytes))), stream: id)
        }
        if draining { return reject(.unavailable, "server shutting down") }
        guard conn.open.count < Int(limits.maxSessionsPerConnection) else {
            return reject(.resourceExhausted, "this connection has \(conn.open.count) sessions; max_sessions_per_connection = \(limits.maxSessionsPerConnection)")
        }
        guard sessions.count < Int(limits.maxSessions) else {
            return reject(.resourceExhausted, "the server has \(sessions.count) sessions; max_sessions = \(limits.maxSessions)")
        }
        var resolved: ResolvedSession
        do {
            if let token = request.continuation {
                guard configuration.resumableSessions else {
                    return reject(.failedPrecondition, "this server does not resume sessions (resumable_sessions = false)")
                }
                resolved = try engine.resume(
                    request, token: token, limits: limits, defaults: configuration.sessionDefaults,
                    key: configuration.continuationKey ?? [], maxBytes: configuration.maxContinuationBytes)
            } else {
                resolved = try engine.resolve(request, limits: limits, defaults: configuration.sessionDefaults)
            }
        } catch {
            return reject(error.code, error.message)
        }
        var sealer: ContinuationSealer?
        if request.resumable == true {
            switch resumability(resolved, conn) {
            case .success(let s):
                do {
                    resolved.opened.continuation = try s.seal(resolved.stream)
                    sealer = s
                    resolved.opened.resumable = true
                } catch {
                    resolved.opened.resumable = false
                    logger.error("session not resumable", metadata: ["conn": "\(conn.id)", "session": "\(id)", "reason": "\(error)"])
                }
            case .failure(let why):
                resolved.opened.resumable = false
                logger.info("session not resumable", metadata: ["conn": "\(conn.id)", "session": "\(id)", "reason": "\(why.message)"])
            }
        }
        let s = Session(key: nextSessionKey, id: id, connection: conn, resolved: resolved, sealer: sealer)
        nextSessionKey += 1
        sessions[s.key] = s
        ring.append(s.key)
        conn.open[id] = s
        metrics.sessionsOpened.increment()
        if request.continuation != nil { metrics.sessionsResumed.increment() }
        logger.info(
            request.continuation == nil ? "session opened" : "session resumed",
            metadata: [
                "conn": "\(conn.id)", "session": "\(id)", "seed": "\(s.opened.seed)", "steps": "\(s.opened.steps)",
                "clip": "\(s.clipIndex)", "resumable": "\(s.opened.resumable ?? false)",
                "size": "\(s.opened.width)x\(s.opened.height)x\(s.opened.framesPerClip)",
                "chain": "\(s.opened.strategies.map(\.name).joined(separator: ","))",
            ])
        send(conn, .sessionOpened(s.opened), stream: id)
        schedule()
    }

    struct NotResumable: Error { var message: String }

    /// Whether a session's continuations can be made and carried: the server allows them, the
    /// stream's state can be saved (no C plugin, no custom noise source), and a token of its
    /// state's bound fits max_continuation_bytes, the client's max_payload (in CLIP_END) and
    /// this server's (in the OPEN_SESSION that presents it, next to a prompt of the largest size).
    private func resumability(_ r: ResolvedSession, _ conn: Connection) -> Result<ContinuationSealer, NotResumable> {
        guard configuration.resumableSessions else { return .failure(NotResumable(message: "resumable_sessions = false")) }
        if let why = r.stream.resumeObstacle { return .failure(NotResumable(message: why)) }
        let requestBytes = WireCodec.encodePayload(.openSession(r.effectiveRequest)).count
        let bound = Continuation.fixedBytes + requestBytes + r.stream.savedStateSizeBound
        let clipEndRoom = conn.encoder.maxPayload - 256
        let openRoom = Int(limits.maxPayload) - 2 * Int(limits.maxPromptBytes) - 16_384
        let limit = min(configuration.maxContinuationBytes, clipEndRoom, openRoom)
        guard bound <= limit else {
            return .failure(NotResumable(message: "its continuation may reach \(bound) bytes, over the \(limit) that max_continuation_bytes and max_payload allow"))
        }
        return .success(
            ContinuationSealer(
                key: configuration.continuationKey ?? [], model: engine.modelFingerprint, request: r.effectiveRequest, maxBytes: limit))
    }

    /// Ends a session for the protocol: sends its last frame (a non-fatal ERROR) when `code` is
    /// given, cancels its job if one runs, and frees it once no job holds it.
    func endSession(_ s: Session, _ code: StatusCode?, _ message: String) {
        guard !s.ended else { return }
        s.ended = true
        let conn = s.connection
        conn.open[s.id] = nil
        if let code, conn.state == .ready {
            send(
                conn, .error(ErrorMessage(code: code, message: clippedUTF8(message, maxBytes: ProtocolLimits.maxMessageTextBytes))),
                stream: s.id)
        }
        logger.info(
            "session ended",
            metadata: [
                "conn": "\(conn.id)", "session": "\(s.id)", "code": "\(code?.name ?? "-")", "reason": "\(message)",
                "clips": "\(s.clipIndex)",
            ])
        if s.jobInFlight {
            perform(.cancel(s.generator))
        } else {
            free(s)
        }
        if draining, conn.state == .ready, conn.open.isEmpty {
            send(conn, .close(Close(code: .unavailable, message: "server shutting down")))
            finish(conn)
        }
    }

    func endSessionsSilently(_ conn: Connection) {
        for s in conn.open.values.sorted(by: { $0.id < $1.id }) {
            s.ended = true
            conn.open[s.id] = nil
            if s.jobInFlight { perform(.cancel(s.generator)) } else { free(s) }
        }
    }

    private func free(_ s: Session) {
        guard sessions.removeValue(forKey: s.key) != nil else { return }
        if let i = ring.firstIndex(of: s.key) { ring.remove(at: i) }
        checkStopped()
    }

    // MARK: - Dispatch

    /// Submits the next clip of every session that may have one: open, a credit, no clip in
    /// flight, its connection ready and under max_queued_bytes. Sessions are visited in opening
    /// order; ordering and sharing the workers between the submitted clips is the executor's job.
    /// One clip in flight per session means a FIFO executor alternates sessions clip by clip.
    func schedule() {
        guard !stopping, !draining else { return }
        for key in ring {
            guard let s = sessions[key], !s.ended, !s.jobInFlight, s.credits > 0, s.connection.state == .ready,
                s.connection.queuedBytes < configuration.maxQueuedBytesPerConnection
            else { continue }
            dispatch(s)
        }
    }

    /// CLIP_START goes out before the job is submitted, so it precedes the clip's PROGRESS and FRAMEs.
    private func dispatch(_ s: Session) {
        s.credits -= 1
        let planned = s.plan.frameCount(clip: Int(s.clipIndex))
        send(
            s.connection,
            .clipStart(
                ClipStart(clipIndex: s.clipIndex, frameCount: UInt32(planned), firstFrameNumber: s.nextFrameNumber, creditsRemaining: s.credits)),
            stream: s.id)
        s.jobInFlight = true
        s.framesThisClip = 0
        s.clipStartedNs = nowNs
        perform(
            .submit(
                ClipJob(
                    sessionKey: s.key, streamId: s.id, clipIndex: s.clipIndex, generator: s.generator, encoder: s.connection.encoder,
                    dispatchedAt: s.clipStartedNs)))
    }

    func workerEvents(_ events: [WorkerEvent]) {
        for event in events {
            switch event {
            case .progress(let key, let bytes):
                if let s = sessions[key], !s.ended { write(s.connection, bytes) }
            case .frame(let key, let bytes):
                if let s = sessions[key], !s.ended {
                    write(s.connection, bytes)
                    s.framesThisClip += 1
                    framesSent += 1
                    metrics.framesServed.increment()
                }
            case .finished(let key, let outcome):
                guard let s = sessions[key] else { continue }
                s.jobInFlight = false
                finished(s, outcome)
            }
        }
        schedule()
    }

    private func finished(_ s: Session, _ outcome: ClipOutcome) {
        switch outcome {
        case .done(let frames, let queue, let denoise, let decode, let encode, let continuation):
            clipsGenerated += 1
            guard !s.ended else { return free(s) }
            let total = (nowNs &- s.clipStartedNs) / 1000
            var end = ClipEnd(
                clipIndex: s.clipIndex, firstFrameNumber: s.nextFrameNumber, frameCount: UInt32(s.framesThisClip),
                queueMicros: queue, denoiseMicros: denoise, decodeMicros: decode, encodeMicros: encode, totalMicros: total)
            end.continuation = continuation
            send(s.connection, .clipEnd(end), stream: s.id)
            metrics.clipsServed.increment()
            metrics.clipSeconds.record(Double(total) / 1e6)
            logger.debug(
                "clip done",
                metadata: [
                    "conn": "\(s.connection.id)", "session": "\(s.id)", "clip": "\(s.clipIndex)", "frames": "\(frames)",
                    "ms": "\(total / 1000)",
                ])
            s.clipIndex += 1
            s.nextFrameNumber += UInt64(frames)
            if draining { endSession(s, .unavailable, "server shutting down") }
        case .cancelled:
            if s.ended { free(s) } else { endSession(s, .cancelled, "cancelled") }
        case .failed(let code, let message):
            logger.error("clip failed", metadata: ["conn": "\(s.connection.id)", "session": "\(s.id)", "code": "\(code.name)", "error": "\(message)"])
            if s.ended { free(s) } else { endSession(s, code, message) }
        }
    }
}
