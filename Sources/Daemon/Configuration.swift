import Foundation
import VidrdProtocol
import VidrdRuntime

/// Everything the daemon can be told. Defaults are the documented ones (docs/DAEMON.md,
/// docs/PROTOCOL.md §10); `DaemonConfiguration(contentsOf:)` reads the `key = value` file format.
public struct DaemonConfiguration: Sendable {
    /// Server-side defaults for OPEN_SESSION fields the client leaves out.
    public struct SessionDefaults: Sendable, Equatable {
        public var steps = UInt32(GenerationDefaults.standardSteps)
        /// nil: the model's recommendation (`generation_config.json` in its folder), else
        /// `GenerationDefaults.standardGuidanceScale`.
        public var guidance: Double? = nil
        public var framesPerClip = UInt32(GenerationDefaults.standardFrames)
        /// nil: the model's native size.
        public var width: UInt32? = nil
        public var height: UInt32? = nil
        public var fps: Double = 8
        public var webpQuality: UInt8 = 80
        public var webpLossless = false
        public init() {}
    }

    public var listen = ListenAddress()
    /// The probe port: Prometheus `/metrics`, `/ready`, `/live` and HAProxy's agent-check
    /// (docs/DAEMON.md, "Metrics and readiness"). nil, the default: no second port. Off by
    /// default because two daemons on one host would otherwise collide on it, and an address
    /// an operator did not ask for should not be opened.
    public var metricsListen: ListenAddress? = nil
    /// Every connection starts with a PROXY protocol v2 header from the load balancer in front
    /// (HAProxy `send-proxy-v2`), which names the client; one without it fails at once. Off by
    /// default: only a daemon reachable solely through the balancer may trust the header.
    public var proxyProtocol = false
    /// Probe connections open at once; more are closed at accept.
    public var metricsMaxConnections = 16
    /// A probe connection's request must be complete, and its answer read, within this time.
    public var metricsTimeoutMs = 5_000
    /// Announced to clients and enforced (docs/PROTOCOL.md §6.6).
    public var limits = ServerLimits.defaults
    /// Connections that completed the handshake; more get RESOURCE_EXHAUSTED at HELLO. Stored in
    /// `limits` because it is announced there (docs/PROTOCOL.md §6.6, tag 15).
    public var maxConnections: Int {
        get { Int(limits.maxConnections ?? ServerLimits.defaults.maxConnections ?? 64) }
        set { limits.maxConnections = UInt32(clamping: newValue) }
    }
    /// Compute threads: how many U-Net calls, decodes or encodes run at once, each for a
    /// different session; sessions share the threads step by step (docs/DAEMON.md, "Scheduling").
    /// By default one per core: several small calls side by side do more work than one call
    /// split over every core (docs/DAEMON.md, "Compute threads").
    public var workers = DaemonConfiguration.defaultWorkers
    /// Cores one compute thread's call splits its work over. nil (the default): the cores are
    /// shared among the calls running at the moment (`CoreShare`), so a lone session's call
    /// gets every core and two calls on two cores one each.
    public var threadsPerWorker: Int? = nil
    /// One compute thread per core, up to 8: beyond that, each thread's activation memory (one
    /// workspace per thread) costs more than the sessions gain on one machine.
    public static var defaultWorkers: Int { Swift.min(ComputeThreads.available, 8) }
    /// Steps of different sessions one U-Net call may hold (same model and input shape; a
    /// guided step's two entries stay together); 1 turns batching off. Off by default: batched
    /// predictions equal the sessions' own to float rounding, not bit for bit (docs/DAEMON.md,
    /// "Continuous batching"), and a stream must reproduce exactly.
    public var maxBatch = 1
    /// How long a step that could share its U-Net call waits for sessions about to submit one.
    public var batchWaitMs = 5
    /// Bytes a connection may have queued for sending before the server stops starting clips
    /// for its sessions and stops reading from it (a clip in progress is always finished).
    public var maxQueuedBytesPerConnection = 8 << 20
    /// After SIGINT/SIGTERM: how long sessions may take to finish the clip in progress.
    public var drainGraceMs = 30_000
    /// After the server's last frame on a connection (CLOSE or fatal ERROR): how long it keeps
    /// reading (and discarding) before closing, so the peer sees the frame rather than a reset.
    public var lingerMs = 2_000
    /// Shared secret clients must send in HELLO; nil: none required.
    public var token: [UInt8]? = nil
    /// Sessions may ask for continuations (OPEN_SESSION `resumable`) and resume from one
    /// (docs/DAEMON.md, "Resumable sessions"). Off: `resumable` is answered with false and a
    /// continuation is rejected with FAILED_PRECONDITION.
    public var resumableSessions = true
    /// Largest continuation this server issues or accepts, bytes. A session whose state would
    /// not fit (a large model's DSG records) gets `resumable` false in SESSION_OPENED.
    public var maxContinuationBytes = 8 << 20
    /// Key of the continuations' HMAC-SHA256; every node that should resume the others' streams
    /// needs the same. nil: an empty key, so a continuation is checked for corruption and
    /// tampering but could be forged by a client (which can then do no more than a crafted
    /// OPEN_SESSION: every field is validated like one).
    public var continuationKey: [UInt8]? = nil
    /// SO_SNDBUF for accepted sockets (bytes); nil: the system's default and autotuning.
    public var socketSendBuffer: Int? = nil
    public var sessionDefaults = SessionDefaults()
    /// Caps `max_width`/`max_height` at this multiple of the model's native frame size (0: no
    /// cap). Memory and time grow with the frame area (the runtime's spatial attention with its
    /// square), so a limit far above what the model was made for lets one request exhaust the
    /// machine.
    public var maxSizeFactor: Double = 2
    public var serverName = "vidrd-daemon 0.1.0"
    /// Read from a config file for the command line tool; the daemon library ignores them.
    public var modelPath: String? = nil
    /// How the model multiplies (command line tool, which loads the model): `fp32`, or the bf16
    /// fast mode on CPUs with AVX-512 BF16.
    public var precision: ComputePrecision = .fp32
    public var pluginsPath: String? = nil
    public var logLevel: String? = nil

    public init() {}

    /// Reads `path` on top of `base`. Errors name the file and line.
    public init(contentsOf path: String, base: DaemonConfiguration = DaemonConfiguration()) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(file: path, line: 0, message: "cannot read: \(error.localizedDescription)")
        }
        try self.init(parsing: text, file: path, base: base)
    }

    /// Parses the `key = value` format (docs/DAEMON.md). `#` starts a comment; blank lines are ignored.
    public init(parsing text: String, file: String = "<config>", base: DaemonConfiguration = DaemonConfiguration()) throws {
        self = base
        var seen = Set<String>()
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = number + 1
            var content = Substring(rawLine)
            if let hash = content.firstIndex(of: "#") { content = content[..<hash] }
            let trimmed = content.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigurationError(file: file, line: line, message: "expected `key = value`, got `\(trimmed)`")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard seen.insert(key).inserted else {
                throw ConfigurationError(file: file, line: line, message: "`\(key)` is set twice")
            }
            do {
                try set(key, value)
            } catch let e as ConfigurationError {
                throw ConfigurationError(file: file, line: line, message: e.message)
            }
        }
        if let e = validationError() { throw ConfigurationError(file: file, line: 0, message: e) }
    }

    /// Every key of the file format with its meaning, for `--help` and docs.
    public static let keys: [(key: String, help: String)] = [
        ("listen", "HOST:PORT to listen on (default 127.0.0.1:7878)"),
        ("metrics_listen", "HOST:PORT (or PORT, on 127.0.0.1) of /metrics, /ready, /live and the HAProxy agent; off = none (default off)"),
        ("metrics_max_connections", "probe connections at once (default 16)"),
        ("proxy_protocol", "true: every connection starts with a PROXY protocol v2 header (HAProxy send-proxy-v2) naming the client (default false)"),
        ("metrics_timeout_ms", "a probe request must arrive and its answer be read within this time (default 5000)"),
        ("workers", "compute threads: steps of different sessions run at once (default: one per core, at most 8)"),
        ("threads_per_worker", "cores one compute thread's call splits over (default: the cores shared among the calls running at the moment)"),
        ("max_batch", "steps of different sessions per U-Net call; 1 = no batching (default 1)"),
        ("batch_wait_ms", "how long a U-Net call waits for compatible steps about to arrive (default 5)"),
        ("max_connections", "connections after the handshake (default 64)"),
        ("max_sessions", "open sessions on the server (default 16)"),
        ("max_sessions_per_connection", "open sessions per connection (default 4)"),
        ("max_payload", "largest frame payload accepted, bytes (default 4194304)"),
        ("max_prompt_bytes", "prompt and negative prompt, UTF-8 bytes (default 2048)"),
        ("max_steps", "denoising steps per clip (default 200)"),
        ("max_width", "pixels (default 1024)"),
        ("max_height", "pixels (default 1024)"),
        ("dimension_multiple", "width and height multiple (default 8; the model's VAE factor is always enforced)"),
        ("max_size_factor", "max_width/max_height are at most this multiple of the model's native size; 0 = no cap (default 2)"),
        ("max_frames_per_clip", "frames per clip (default 64)"),
        ("max_credits", "outstanding credits per session (default 64)"),
        ("max_chain_length", "strategies per chain (default 8)"),
        ("keepalive_interval_ms", "client PING interval announced to clients (default 15000)"),
        ("idle_timeout_ms", "close a connection silent this long; 0 = never (default 60000)"),
        ("handshake_timeout_ms", "HELLO must arrive within this time (default 10000)"),
        ("frame_timeout_ms", "a frame must be complete this long after its first byte; 0 = no deadline (default 30000)"),
        ("max_queued_bytes", "bytes queued per connection before its sessions pause (default 8388608)"),
        ("drain_grace_ms", "on SIGINT/SIGTERM, time to finish clips in progress (default 30000)"),
        ("linger_ms", "read-and-discard time after the last frame before closing (default 2000)"),
        ("socket_send_buffer", "SO_SNDBUF of accepted sockets, bytes (default: system)"),
        ("token", "shared secret clients must send (default: none)"),
        ("token_file", "read the shared secret from this file (first line)"),
        ("resumable_sessions", "sessions may ask for continuations and resume from one (default true)"),
        ("max_continuation_bytes", "largest continuation issued or accepted, bytes (default 8388608)"),
        ("continuation_key_file", "HMAC key of continuations, shared by the nodes that resume each other's streams (default: none, an empty key)"),
        ("default_steps", "steps when a session names none (default \(GenerationDefaults.standardSteps))"),
        (
            "default_guidance",
            "guidance when a session names none (default: the model folder's generation_config.json, else \(GenerationDefaults.standardGuidanceScale))"
        ),
        ("default_frames_per_clip", "frames per clip when a session names none (default \(GenerationDefaults.standardFrames))"),
        ("default_width", "width when a session names none (default: the model's)"),
        ("default_height", "height when a session names none (default: the model's)"),
        ("default_fps", "fps metadata when a session names none (default 8)"),
        ("default_webp_quality", "WebP quality 0-100 when a session names none (default 80)"),
        ("default_webp_lossless", "true/false (default false)"),
        ("server_name", "announced in ServerInfo (default vidrd-daemon 0.1.0)"),
        ("model", "model folder (command line tool; --model wins)"),
        ("precision", "fp32 (exact, default) or bf16 (fast mode, needs AVX-512 BF16; command line tool; --precision wins)"),
        ("plugins", "plugins.conf path (command line tool; --plugins wins)"),
        ("log_level", "trace, debug, info, notice, warning, error, critical (default info)"),
    ]

    /// Sets one key of the file format (as if read from a file); errors carry no file or line.
    public mutating func set(_ key: String, _ value: String) throws {
        func u32(_ range: ClosedRange<UInt32> = 0...UInt32.max) throws -> UInt32 {
            guard let v = UInt32(value.replacingOccurrences(of: "_", with: "")), range.contains(v) else {
                throw ConfigurationError(message: "`\(key)` must be an integer in \(range.lowerBound)...\(range.upperBound), got `\(value)`")
            }
            return v
        }
        func int(_ range: ClosedRange<Int>) throws -> Int { Int(try u32(UInt32(range.lowerBound)...UInt32(range.upperBound))) }
        func double(_ range: ClosedRange<Double>) throws -> Double {
            guard let v = Double(value), v.isFinite, range.contains(v) else {
                throw ConfigurationError(message: "`\(key)` must be a number in \(range.lowerBound)...\(range.upperBound), got `\(value)`")
            }
            return v
        }
        func bool() throws -> Bool {
            switch value.lowercased() {
            case "true", "yes", "on", "1": return true
            case "false", "no", "off", "0": return false
            default: throw ConfigurationError(message: "`\(key)` must be true or false, got `\(value)`")
            }
        }
        switch key {
        case "listen":
            guard let a = ListenAddress(parsing: value) else {
                throw ConfigurationError(message: "`listen` must be HOST:PORT, got `\(value)`")
            }
            listen = a
        case "metrics_listen":
            if ["off", "none"].contains(value.lowercased()) {
                metricsListen = nil
            } else {
                guard let a = ListenAddress(parsing: value), a.hasNumericHost else {
                    throw ConfigurationError(
                        message: "`metrics_listen` must be HOST:PORT or PORT with a numeric IPv4 or IPv6 host or localhost (or off), got `\(value)`")
                }
                metricsListen = a
            }
        case "metrics_max_connections": metricsMaxConnections = try int(1...1024)
        case "proxy_protocol": proxyProtocol = try bool()
        case "metrics_timeout_ms": metricsTimeoutMs = try int(10...600_000)
        case "workers": workers = try int(1...64)
        case "threads_per_worker": threadsPerWorker = try int(1...ComputeThreads.available)
        case "max_batch": maxBatch = try int(1...256)
        case "batch_wait_ms": batchWaitMs = try int(0...1000)
        case "max_connections": maxConnections = try int(1...100_000)
        case "max_sessions": limits.maxSessions = try u32(1...100_000)
        case "max_sessions_per_connection": limits.maxSessionsPerConnection = try u32(1...10_000)
        case "max_payload":
            limits.maxPayload = try u32(UInt32(ProtocolLimits.minMaxPayload)...UInt32(ProtocolLimits.maxMaxPayload))
        case "max_prompt_bytes": limits.maxPromptBytes = try u32(1...UInt32(ProtocolLimits.maxPromptBytes))
        case "max_steps": limits.maxSteps = try u32(1...ProtocolLimits.maxSteps)
        case "max_width": limits.maxWidth = try u32(1...ProtocolLimits.maxDimension)
        case "max_height": limits.maxHeight = try u32(1...ProtocolLimits.maxDimension)
        case "dimension_multiple": limits.dimensionMultiple = try u32(1...8192)
        case "max_size_factor": maxSizeFactor = try double(0...64)
        case "max_frames_per_clip": limits.maxFramesPerClip = try u32(1...ProtocolLimits.maxFramesPerClip)
        case "max_credits": limits.maxCredits = try u32(1...ProtocolLimits.maxCredits)
        case "max_session_weight": limits.maxSessionWeight = try u32(1...ProtocolLimits.maxSessionWeight)
        case "max_chain_length": limits.maxChainLength = try u32(0...UInt32(ProtocolLimits.maxChainLength))
        case "keepalive_interval_ms": limits.keepaliveIntervalMs = try u32(100...86_400_000)
        case "idle_timeout_ms": limits.idleTimeoutMs = try u32(0...86_400_000)
        case "handshake_timeout_ms": limits.handshakeTimeoutMs = try u32(10...3_600_000)
        case "frame_timeout_ms": limits.frameTimeoutMs = try u32(0...3_600_000)
        case "max_queued_bytes": maxQueuedBytesPerConnection = try int(4096...(1 << 30))
        case "drain_grace_ms": drainGraceMs = try int(0...3_600_000)
        case "linger_ms": lingerMs = try int(0...60_000)
        case "socket_send_buffer": socketSendBuffer = try int(1024...(64 << 20))
        case "token":
            guard !value.isEmpty, value.utf8.count <= ProtocolLimits.maxTokenBytes else {
                throw ConfigurationError(message: "`token` must be 1...\(ProtocolLimits.maxTokenBytes) bytes")
            }
            token = Array(value.utf8)
        case "token_file":
            guard let text = try? String(contentsOfFile: value, encoding: .utf8),
                  let first = text.split(separator: "\n").first.map({ $0.trimmingCharacters(in: .whitespaces) }),
                  !first.isEmpty, first.utf8.count <= ProtocolLimits.maxTokenBytes
            else { throw ConfigurationError(message: "`token_file`: cannot read a token of 1...256 bytes from \(value)") }
            token = Array(first.utf8)
        case "resumable_sessions": resumableSessions = try bool()
        case "max_continuation_bytes": maxContinuationBytes = try int(1024...ProtocolLimits.maxContinuationBytes)
        case "continuation_key_file":
            // The whole file is the key (binary allowed), as `openssl rand 32 > key` writes it.
            guard let data = FileManager.default.contents(atPath: value), (16...4096).contains(data.count) else {
                throw ConfigurationError(message: "`continuation_key_file`: cannot read a key of 16...4096 bytes from \(value)")
            }
            continuationKey = Array(data)
        case "default_steps": sessionDefaults.steps = try u32(1...ProtocolLimits.maxSteps)
        case "default_guidance": sessionDefaults.guidance = try double(0...ProtocolLimits.maxGuidance)
        case "default_frames_per_clip": sessionDefaults.framesPerClip = try u32(1...ProtocolLimits.maxFramesPerClip)
        case "default_width": sessionDefaults.width = try u32(1...ProtocolLimits.maxDimension)
        case "default_height": sessionDefaults.height = try u32(1...ProtocolLimits.maxDimension)
        case "default_fps": sessionDefaults.fps = try double(0.001...ProtocolLimits.maxFPS)
        case "default_webp_quality": sessionDefaults.webpQuality = UInt8(try u32(0...100))
        case "default_webp_lossless": sessionDefaults.webpLossless = try bool()
        case "server_name":
            guard !value.isEmpty, value.utf8.count <= ProtocolLimits.maxServerNameBytes else {
                throw ConfigurationError(message: "`server_name` must be 1...128 bytes")
            }
            serverName = value
        case "model": modelPath = value
        case "precision":
            guard let p = ComputePrecision(name: value) else {
                throw ConfigurationError(message: "`precision` must be \(ComputePrecision.allCases.map(\.rawValue).joined(separator: " or ")), got `\(value)`")
            }
            precision = p
        case "plugins": pluginsPath = value
        case "log_level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw ConfigurationError(message: "`log_level` must be trace, debug, info, notice, warning, error or critical")
            }
            logLevel = value
        default:
            throw ConfigurationError(message: "unknown key `\(key)` (known: \(Self.keys.map(\.key).joined(separator: ", ")))")
        }
    }

    /// A description of what is inconsistent, or nil.
    public func validationError() -> String? {
        let l = limits
        if l.maxSessionsPerConnection > l.maxSessions { return "max_sessions_per_connection (\(l.maxSessionsPerConnection)) exceeds max_sessions (\(l.maxSessions))" }
        if sessionDefaults.steps > l.maxSteps { return "default_steps (\(sessionDefaults.steps)) exceeds max_steps (\(l.maxSteps))" }
        if sessionDefaults.framesPerClip > l.maxFramesPerClip {
            return "default_frames_per_clip (\(sessionDefaults.framesPerClip)) exceeds max_frames_per_clip (\(l.maxFramesPerClip))"
        }
        if let w = sessionDefaults.width, w > l.maxWidth { return "default_width (\(w)) exceeds max_width (\(l.maxWidth))" }
        if let h = sessionDefaults.height, h > l.maxHeight { return "default_height (\(h)) exceeds max_height (\(l.maxHeight))" }
        if l.keepaliveIntervalMs == 0 { return "keepalive_interval_ms must be positive" }
        if l.idleTimeoutMs != 0, l.idleTimeoutMs < l.keepaliveIntervalMs {
            return "idle_timeout_ms (\(l.idleTimeoutMs)) is shorter than keepalive_interval_ms (\(l.keepaliveIntervalMs)): idle clients would be dropped"
        }
        return nil
    }
}

/// A bad configuration file or value: `file:line: message`.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String = "", line: Int = 0, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        file.isEmpty ? message : line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)"
    }
}
