// Message types of protocol version 1 (docs/PROTOCOL.md §5 and §6).
// All are plain Sendable value types; the codec validates them when encoding and decoding.

/// One frame's meaning: its stream id (0 = the connection, otherwise a session id) and message.
public struct Envelope: Sendable, Hashable {
    public var stream: UInt32
    public var message: Message

    public init(stream: UInt32 = 0, message: Message) {
        self.stream = stream
        self.message = message
    }
}

public enum Message: Sendable, Hashable {
    case hello(Hello)
    case helloAck(HelloAck)
    case ping(nonce: UInt64)
    case pong(nonce: UInt64)
    case close(Close)
    case error(ErrorMessage)
    case infoRequest
    case info(ServerInfo)
    case listStrategies
    case strategies(StrategyList)
    case openSession(OpenSession)
    case sessionOpened(SessionOpened)
    case pull(credits: UInt32)
    case cancel
    case clipStart(ClipStart)
    case progress(Progress)
    case frame(VideoFrame)
    case clipEnd(ClipEnd)

    public var frameType: FrameType {
        switch self {
        case .hello: .hello
        case .helloAck: .helloAck
        case .ping: .ping
        case .pong: .pong
        case .close: .close
        case .error: .error
        case .infoRequest: .infoRequest
        case .info: .info
        case .listStrategies: .listStrategies
        case .strategies: .strategies
        case .openSession: .openSession
        case .sessionOpened: .sessionOpened
        case .pull: .pull
        case .cancel: .cancel
        case .clipStart: .clipStart
        case .progress: .progress
        case .frame: .frame
        case .clipEnd: .clipEnd
        }
    }
}

// MARK: - Handshake

/// HELLO (client → server, stream 0): the client's version range, token and receive limit.
public struct Hello: Sendable, Hashable {
    public var minVersion: UInt16
    public var maxVersion: UInt16
    /// Shared secret, when the server requires one (≤ 256 bytes, compared byte for byte).
    public var token: [UInt8]?
    /// Free text such as `vidrd-client/0.1` (≤ 128 bytes UTF-8), for the server's logs.
    public var clientName: String?
    /// Largest payload the client accepts (64 KiB...64 MiB); absent means 4 MiB.
    public var maxPayload: UInt32?

    public init(
        minVersion: UInt16 = VidrdProtocolVersion.minimum, maxVersion: UInt16 = VidrdProtocolVersion.current,
        token: [UInt8]? = nil, clientName: String? = nil, maxPayload: UInt32? = nil
    ) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.token = token
        self.clientName = clientName
        self.maxPayload = maxPayload
    }
}

/// HELLO_ACK (server → client, stream 0): the chosen version and what the server offers.
public struct HelloAck: Sendable, Hashable {
    public var version: UInt16
    public var info: ServerInfo
    public var strategies: StrategyList

    public init(version: UInt16 = VidrdProtocolVersion.current, info: ServerInfo, strategies: StrategyList) {
        self.version = version
        self.info = info
        self.strategies = strategies
    }
}

/// Server description and live counters (HELLO_ACK and INFO).
public struct ServerInfo: Sendable, Hashable {
    public var serverName: String
    public var modelName: String
    public var limits: ServerLimits
    public var activeSessions: UInt32
    public var activeConnections: UInt32
    public var uptimeMs: UInt64
    public var clipsGenerated: UInt64
    public var framesSent: UInt64
    /// Bytes the server holds for sending, summed over all connections (0 is not encoded).
    public var queuedBytes: UInt64

    public init(
        serverName: String, modelName: String, limits: ServerLimits = .defaults,
        activeSessions: UInt32 = 0, activeConnections: UInt32 = 0, uptimeMs: UInt64 = 0,
        clipsGenerated: UInt64 = 0, framesSent: UInt64 = 0, queuedBytes: UInt64 = 0
    ) {
        self.queuedBytes = queuedBytes
        self.serverName = serverName
        self.modelName = modelName
        self.limits = limits
        self.activeSessions = activeSessions
        self.activeConnections = activeConnections
        self.uptimeMs = uptimeMs
        self.clipsGenerated = clipsGenerated
        self.framesSent = framesSent
    }
}

/// The limits a server enforces (docs/PROTOCOL.md §10). `defaults` are the documented defaults.
public struct ServerLimits: Sendable, Hashable {
    /// Largest payload the server accepts.
    public var maxPayload: UInt32
    public var maxSessionsPerConnection: UInt32
    public var maxSessions: UInt32
    public var maxPromptBytes: UInt32
    public var maxSteps: UInt32
    public var maxWidth: UInt32
    public var maxHeight: UInt32
    /// Width and height must be multiples of this.
    public var dimensionMultiple: UInt32
    public var maxFramesPerClip: UInt32
    /// Most outstanding (granted, not yet started) clips per session.
    public var maxCredits: UInt32
    public var maxChainLength: UInt32
    /// The client sends a PING when it has sent nothing for this long.
    public var keepaliveIntervalMs: UInt32
    /// The server closes a connection from which it received nothing for this long (0: never).
    public var idleTimeoutMs: UInt32
    /// The server closes a connection whose HELLO has not arrived within this time.
    public var handshakeTimeoutMs: UInt32
    /// Connections the server serves after the handshake (tag 15). Optional on the wire because
    /// it was added within version 1: nil means the server did not announce it.
    public var maxConnections: UInt32?
    /// A frame whose first byte has arrived must be complete within this time, or the server
    /// fails the connection (tag 16; 0: no deadline; nil: not announced).
    public var frameTimeoutMs: UInt32?
    /// The largest scheduling weight a session may ask for (tag 17; 1: weights are off; nil: not
    /// announced, which means 1; vidrd announces it when `max_session_weight` is configured).
    public var maxSessionWeight: UInt32? = nil

    public init(
        maxPayload: UInt32, maxSessionsPerConnection: UInt32, maxSessions: UInt32, maxPromptBytes: UInt32,
        maxSteps: UInt32, maxWidth: UInt32, maxHeight: UInt32, dimensionMultiple: UInt32,
        maxFramesPerClip: UInt32, maxCredits: UInt32, maxChainLength: UInt32, keepaliveIntervalMs: UInt32,
        idleTimeoutMs: UInt32, handshakeTimeoutMs: UInt32, maxConnections: UInt32? = nil, frameTimeoutMs: UInt32? = nil
    ) {
        self.maxPayload = maxPayload
        self.maxSessionsPerConnection = maxSessionsPerConnection
        self.maxSessions = maxSessions
        self.maxPromptBytes = maxPromptBytes
        self.maxSteps = maxSteps
        self.maxWidth = maxWidth
        self.maxHeight = maxHeight
        self.dimensionMultiple = dimensionMultiple
        self.maxFramesPerClip = maxFramesPerClip
        self.maxCredits = maxCredits
        self.maxChainLength = maxChainLength
        self.keepaliveIntervalMs = keepaliveIntervalMs
        self.idleTimeoutMs = idleTimeoutMs
        self.handshakeTimeoutMs = handshakeTimeoutMs
        self.maxConnections = maxConnections
        self.frameTimeoutMs = frameTimeoutMs
    }

    /// The defaults stated in docs/PROTOCOL.md §10.
    public static let defaults = ServerLimits(
        maxPayload: UInt32(ProtocolLimits.defaultMaxPayload), maxSessionsPerConnection: 4, maxSessions: 16,
        maxPromptBytes: 2048, maxSteps: 200, maxWidth: 1024, maxHeight: 1024, dimensionMultiple: 8,
        maxFramesPerClip: 64, maxCredits: 64, maxChainLength: 8, keepaliveIntervalMs: 15_000,
        idleTimeoutMs: 60_000, handshakeTimeoutMs: 10_000, maxConnections: 64, frameTimeoutMs: 30_000)
}

// MARK: - Strategies

/// A typed strategy parameter value.
public enum ParamValue: Sendable, Hashable {
    case double(Double)
    case int(Int64)
    case bool(Bool)
    case string(String)

    /// The value-kind name used in docs and CLI output.
    public var kindName: String {
        switch self {
        case .double: "double"
        case .int: "int"
        case .bool: "bool"
        case .string: "string"
        }
    }
}

public struct StrategyParam: Sendable, Hashable {
    public var name: String
    public var value: ParamValue

    public init(_ name: String, _ value: ParamValue) {
        self.name = name
        self.value = value
    }
}

/// One element of a strategy chain: a strategy name and its parameters (unique names, in order).
public struct StrategySpec: Sendable, Hashable {
    public var name: String
    public var params: [StrategyParam]

    public init(name: String, params: [StrategyParam] = []) {
        self.name = name
        self.params = params
    }
}

/// A parameter a strategy accepts: its name, type (the kind of `defaultValue`) and bounds.
public struct ParamDescriptor: Sendable, Hashable {
    public var name: String
    public var defaultValue: ParamValue
    public var summary: String
    /// Inclusive bounds for `double` and `int` parameters.
    public var minimum: Double?
    public var maximum: Double?

    public init(name: String, defaultValue: ParamValue, summary: String = "", minimum: Double? = nil, maximum: Double? = nil) {
        self.name = name
        self.defaultValue = defaultValue
        self.summary = summary
        self.minimum = minimum
        self.maximum = maximum
    }
}

public struct StrategyDescriptor: Sendable, Hashable {
    public var name: String
    public var summary: String
    public var params: [ParamDescriptor]

    public init(name: String, summary: String = "", params: [ParamDescriptor] = []) {
        self.name = name
        self.summary = summary
        self.params = params
    }
}

/// STRATEGIES (server → client, stream 0; also inside HELLO_ACK).
public struct StrategyList: Sendable, Hashable {
    public var strategies: [StrategyDescriptor]
    /// The chain a session gets when OPEN_SESSION names none.
    public var defaultChain: [StrategySpec]

    public init(strategies: [StrategyDescriptor] = [], defaultChain: [StrategySpec] = []) {
        self.strategies = strategies
        self.defaultChain = defaultChain
    }
}

// MARK: - Sessions

/// OPEN_SESSION (client → server; the stream id is the new session id chosen by the client).
/// Absent optional fields take the server's defaults; SESSION_OPENED reports the effective values.
public struct OpenSession: Sendable, Hashable {
    public var prompt: String
    public var negativePrompt: String?
    public var seed: UInt64?
    public var steps: UInt32?
    public var guidance: Double?
    public var framesPerClip: UInt32?
    public var width: UInt32?
    public var height: UInt32?
    public var fps: Double?
    /// The wire's `chain` (tag 10). nil: the server's default chain; `[]`: no strategies (fresh
    /// noise for every clip).
    public var strategies: [StrategySpec]?
    /// The same field under its wire and document name (docs/PROTOCOL.md §6.8).
    public var chain: [StrategySpec]? {
        get { strategies }
        set { strategies = newValue }
    }
    /// 0...100. Lossy: quality. Lossless: compression effort (libwebp semantics).
    public var webpQuality: UInt8?
    public var webpLossless: Bool?
    /// Credits granted with the request, as if a PULL followed (0...65536).
    public var initialCredits: UInt32?
    /// M, the frames each clip shares with the previous one (0...frames_per_clip).
    public var promptFrames: UInt32?
    /// Which frames of each clip are sent.
    public var emission: FrameEmission?
    /// Which generator turns `seed` into noise (tag 17); nil: the server's (vidrd's own). Set it
    /// after `init`, whose signature stays as it was for existing callers.
    public var noiseGenerator: NoiseGeneratorKind? = nil
    /// Asks for a continuation with every CLIP_END (tag 18), so that the stream can be resumed on
    /// this or another server after a drain or a crash; nil: false.
    public var resumable: Bool? = nil
    /// Resumes the stream a continuation token describes (tag 19, an opaque token from a
    /// CLIP_END): the session continues with the clip after the one the token came with, with the
    /// token's parameters. Fields of this request other than `initial_credits` and `resumable`
    /// may be left out; those given must equal the token's (docs/PROTOCOL.md §8.8).
    public var continuation: [UInt8]? = nil
    /// Which scheduler samples every clip (tag 20); nil: the model's own.
    public var scheduler: SchedulerChoice? = nil
    /// The session's share of the server's compute relative to others (tag 21, 1 ... the server's
    /// `max_session_weight`); nil: 1, everyone's default.
    public var weight: UInt32? = nil

    public init(
        prompt: String, negativePrompt: String? = nil, seed: UInt64? = nil, steps: UInt32? = nil,
        guidance: Double? = nil, framesPerClip: UInt32? = nil, width: UInt32? = nil, height: UInt32? = nil,
        fps: Double? = nil, strategies: [StrategySpec]? = nil, webpQuality: UInt8? = nil,
        webpLossless: Bool? = nil, initialCredits: UInt32? = nil, promptFrames: UInt32? = nil,
        emission: FrameEmission? = nil
    ) {
        self.promptFrames = promptFrames
        self.emission = emission
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.seed = seed
        self.steps = steps
        self.guidance = guidance
        self.framesPerClip = framesPerClip
        self.width = width
        self.height = height
        self.fps = fps
        self.strategies = strategies
        self.webpQuality = webpQuality
        self.webpLossless = webpLossless
        self.initialCredits = initialCredits
    }
}

/// SESSION_OPENED (server → client, on the session's stream): the effective parameters.
public struct SessionOpened: Sendable, Hashable {
    public var seed: UInt64
    public var steps: UInt32
    public var guidance: Double
    public var framesPerClip: UInt32
    public var width: UInt32
    public var height: UInt32
    public var fps: Double
    /// The effective chain (the wire's `chain`, tag 10), every parameter spelled out.
    public var strategies: [StrategySpec]
    /// The same field under its wire and document name (docs/PROTOCOL.md §6.9).
    public var chain: [StrategySpec] { strategies }
    public var webpQuality: UInt8
    public var webpLossless: Bool
    /// Number of prompt tokens the text encoder used (after truncation), if the server reports it.
    public var promptTokens: UInt32?
    /// M, the frames each clip shares with the previous one (optional on the wire; vidrd sends it).
    public var promptFrames: UInt32?
    /// Which frames of each clip are sent (optional on the wire; vidrd sends it).
    public var emission: FrameEmission?
    /// True when every CLIP_END of this session carries a continuation (tag 17); nil or false: none.
    public var resumable: Bool? = nil
    /// With `resumable`: the stream's state before its first clip here (tag 18), so that even a
    /// session lost during that clip can be resumed (elsewhere) instead of opened anew.
    public var continuation: [UInt8]? = nil
    /// The scheduler every clip samples with (tag 20; optional on the wire, vidrd sends it).
    public var scheduler: SchedulerChoice? = nil
    /// The session's scheduling weight (tag 21; optional on the wire, vidrd sends it).
    public var weight: UInt32? = nil

    public init(
        seed: UInt64, steps: UInt32, guidance: Double, framesPerClip: UInt32, width: UInt32, height: UInt32,
        fps: Double, strategies: [StrategySpec], webpQuality: UInt8, webpLossless: Bool, promptTokens: UInt32? = nil,
        promptFrames: UInt32? = nil, emission: FrameEmission? = nil
    ) {
        self.promptFrames = promptFrames
        self.emission = emission
        self.seed = seed
        self.steps = steps
        self.guidance = guidance
        self.framesPerClip = framesPerClip
        self.width = width
        self.height = height
        self.fps = fps
        self.strategies = strategies
        self.webpQuality = webpQuality
        self.webpLossless = webpLossless
        self.promptTokens = promptTokens
    }
}

/// Which frames of each clip a session sends (OPEN_SESSION / SESSION_OPENED tag 16).
/// OPEN_SESSION's `noise_generator` (docs/PROTOCOL.md §6.8).
public enum NoiseGeneratorKind: UInt8, Sendable, Hashable, CaseIterable {
    /// vidrd's documented generator (xoshiro256**, Box–Muller).
    case vidrd = 1
    /// PyTorch's CPU generator: `torch.randn(shape, generator=torch.Generator().manual_seed(seed))`.
    case torch = 2
    /// PyTorch's generator in the VidRD authors' draw order (clip 0 one frame at a time).
    case torchReuseAndDiffuse = 3
}

/// A diffusers scheduler (docs/PROTOCOL.md §6.8, tag 20).
public enum SchedulerChoice: UInt8, Sendable, Hashable, CaseIterable {
    /// `DDIMScheduler`, η = 0: the only one under which per-frame-timestep strategies (fifo) run.
    case ddim = 1
    /// `DPMSolverMultistepScheduler`, dpmsolver++ (second order): as good in far fewer steps.
    case dpmSolver = 2
    /// `EulerDiscreteScheduler`, no churn.
    case euler = 3

    /// A name as `name` spells it, or "dpmsolver++", case-insensitive.
    public init?(name: String) {
        let n = name.lowercased()
        guard let c = Self.allCases.first(where: { $0.name == n || (n == "dpmsolver++" && $0 == .dpmSolver) }) else { return nil }
        self = c
    }

    /// The name the command-line tools and documents use ("ddim", "dpm++", "euler").
    public var name: String {
        switch self {
        case .ddim: return "ddim"
        case .dpmSolver: return "dpm++"
        case .euler: return "euler"
        }
    }
}

public enum FrameEmission: UInt8, Sendable, Hashable, CaseIterable {
    /// All frames of every clip; clip k+1's M prompt frames repeat clip k's last M (reversed).
    case all = 1
    /// Clip 0 whole, then only the frames after the M prompt frames of every later clip.
    case new = 2

    public var name: String { self == .all ? "all" : "new" }
}

/// CLIP_START (server → client): a clip begins; it consumed one credit.
public struct ClipStart: Sendable, Hashable {
    /// 0 for the session's first clip, then consecutive.
    public var clipIndex: UInt32
    public var frameCount: UInt32
    /// Session-wide number of the clip's first frame (0 for the first clip).
    public var firstFrameNumber: UInt64
    /// Credits left after this clip took one.
    public var creditsRemaining: UInt32

    public init(clipIndex: UInt32, frameCount: UInt32, firstFrameNumber: UInt64, creditsRemaining: UInt32) {
        self.clipIndex = clipIndex
        self.frameCount = frameCount
        self.firstFrameNumber = firstFrameNumber
        self.creditsRemaining = creditsRemaining
    }
}

/// PROGRESS (server → client): how far the current clip has come.
public struct Progress: Sendable, Hashable {
    public enum Phase: UInt8, Sendable, Hashable, CaseIterable {
        /// U-Net denoising steps.
        case denoise = 1
        /// VAE decoding (step = frames decoded).
        case decode = 2
        /// WebP encoding (step = frames encoded).
        case encode = 3
    }

    public var clipIndex: UInt32
    public var phase: Phase
    /// 0...total.
    public var step: UInt32
    /// ≥ 1.
    public var total: UInt32

    public init(clipIndex: UInt32, phase: Phase = .denoise, step: UInt32, total: UInt32) {
        self.clipIndex = clipIndex
        self.phase = phase
        self.step = step
        self.total = total
    }
}

/// FRAME (server → client): one video frame as a complete WebP file, sent as produced.
public struct VideoFrame: Sendable, Hashable {
    public var clipIndex: UInt32
    /// 0-based index within the clip.
    public var frameIndex: UInt32
    /// Session-wide frame number (0 for the first frame of clip 0).
    public var frameNumber: UInt64
    /// A complete RIFF/WEBP file.
    public var webp: [UInt8]

    public init(clipIndex: UInt32, frameIndex: UInt32, frameNumber: UInt64, webp: [UInt8]) {
        self.clipIndex = clipIndex
        self.frameIndex = frameIndex
        self.frameNumber = frameNumber
        self.webp = webp
    }
}

/// CLIP_END (server → client): every frame of the clip has been sent. Timings in microseconds.
public struct ClipEnd: Sendable, Hashable {
    public var clipIndex: UInt32
    public var firstFrameNumber: UInt64
    public var frameCount: UInt32
    /// Time the clip waited for a worker after CLIP_START.
    public var queueMicros: UInt64
    public var denoiseMicros: UInt64
    public var decodeMicros: UInt64
    public var encodeMicros: UInt64
    /// CLIP_START to CLIP_END.
    public var totalMicros: UInt64
    /// The stream's state after this clip, sealed by the server (tag 9; sessions opened with
    /// `resumable`): present it in OPEN_SESSION to continue with the next clip.
    public var continuation: [UInt8]? = nil

    public init(
        clipIndex: UInt32, firstFrameNumber: UInt64, frameCount: UInt32, queueMicros: UInt64 = 0,
        denoiseMicros: UInt64 = 0, decodeMicros: UInt64 = 0, encodeMicros: UInt64 = 0, totalMicros: UInt64 = 0
    ) {
        self.clipIndex = clipIndex
        self.firstFrameNumber = firstFrameNumber
        self.frameCount = frameCount
        self.queueMicros = queueMicros
        self.denoiseMicros = denoiseMicros
        self.decodeMicros = decodeMicros
        self.encodeMicros = encodeMicros
        self.totalMicros = totalMicros
    }
}

// MARK: - Control

/// ERROR (either direction). Not fatal: ends the session named by the stream id (non-zero).
/// Fatal (header flag 0x01): the sender closes the connection after it.
public struct ErrorMessage: Sendable, Hashable {
    /// Never `.ok`.
    public var code: StatusCode
    public var message: String
    public var fatal: Bool
    /// A hint for RESOURCE_EXHAUSTED / UNAVAILABLE: retry no sooner than this.
    public var retryAfterMs: UInt32?

    public init(code: StatusCode, message: String = "", fatal: Bool = false, retryAfterMs: UInt32? = nil) {
        self.code = code
        self.message = message
        self.fatal = fatal
        self.retryAfterMs = retryAfterMs
    }
}

/// CLOSE (either direction, stream 0): graceful end of the connection.
public struct Close: Sendable, Hashable {
    public var code: StatusCode
    public var message: String

    public init(code: StatusCode = .ok, message: String = "") {
        self.code = code
        self.message = message
    }
}
