import ArgumentParser
import Foundation
import VidrdClient
import VidrdMedia
import VidrdProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses (sysexits.h), documented in `--help` and the README.
enum Exit {
    static let usage: Int32 = 64          // EX_USAGE: bad flags
    static let rejected: Int32 = 65       // EX_DATAERR: the server rejected the request (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE)
    static let unavailable: Int32 = 69    // EX_UNAVAILABLE: cannot connect, or the connection was lost
    static let server: Int32 = 70         // EX_SOFTWARE: any other server error (INTERNAL, UNKNOWN, ...)
    static let cantCreate: Int32 = 73     // EX_CANTCREAT: cannot write an output file
    static let tempFail: Int32 = 75       // EX_TEMPFAIL: server busy or shutting down (RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED)
    static let protocolError: Int32 = 76  // EX_PROTOCOL: protocol violation, no common version (UNIMPLEMENTED)
    static let noPermission: Int32 = 77   // EX_NOPERM: UNAUTHENTICATED, PERMISSION_DENIED

    static func code(for e: VidrdError) -> Int32 {
        switch e.kind {
        case .connectionFailed, .connectionClosed: return unavailable
        case .protocolViolation: return protocolError
        case .closedByClient: return 0
        case .server:
            switch e.code {
            case .unauthenticated, .permissionDenied: return noPermission
            case .invalidArgument, .failedPrecondition, .outOfRange: return rejected
            case .resourceExhausted, .unavailable, .deadlineExceeded, .aborted: return tempFail
            case .unimplemented: return protocolError
            default: return server
            }
        }
    }

    static let help = """
        Exit status: 0 success (also after Ctrl-C); 64 usage error; 65 request rejected by the server \
        (INVALID_ARGUMENT, FAILED_PRECONDITION); 69 cannot connect or connection lost; 70 other server error \
        (INTERNAL, UNKNOWN, ...); 73 cannot write output; 75 server busy or shutting down (RESOURCE_EXHAUSTED, \
        UNAVAILABLE, DEADLINE_EXCEEDED); 76 protocol error or no common version (UNIMPLEMENTED); \
        77 authentication failed (UNAUTHENTICATED).
        """
}

/// The C library's exit, for code inside a ParsableCommand, where `exit` is ArgumentParser's.
func exitProcess(_ code: Int32) -> Never { exit(code) }

func fail(_ message: String, _ code: Int32) -> Never {
    FileHandle.standardError.write(Data("vidrd-client: \(message)\n".utf8))
    exit(code)
}

struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "Daemon address HOST:PORT.")
    var server = "127.0.0.1:7878"

    @Option(help: "File holding the daemon's shared secret (or set VIDRD_TOKEN).")
    var tokenFile: String?

    func endpoint() -> (host: String, port: UInt16) {
        let t = server.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("["), let close = t.firstIndex(of: "]"), let p = UInt16(t[t.index(close, offsetBy: 2)...]) {
            return (String(t[t.index(after: t.startIndex)..<close]), p)
        }
        if let p = UInt16(t) { return ("127.0.0.1", p) }
        guard let colon = t.lastIndex(of: ":"), let p = UInt16(t[t.index(after: colon)...]) else {
            fail("--server must be HOST:PORT, got \(server)", Exit.usage)
        }
        return (String(t[..<colon]), p)
    }

    func token() -> String? {
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { fail("cannot read \(tokenFile)", Exit.usage) }
            return text.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return ProcessInfo.processInfo.environment["VIDRD_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func connect() async -> VidrdClient {
        let (host, port) = endpoint()
        do {
            return try await VidrdClient.connect(host: host, port: port, token: token())
        } catch let e as VidrdError {
            fail("\(e)", Exit.code(for: e))
        } catch {
            fail("\(error)", Exit.unavailable)
        }
    }
}

@main
struct VidrdClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vidrd-client",
        abstract: "Streams endless text-to-video clips from a vidrd daemon.",
        discussion: Exit.help,
        subcommands: [Stream.self, Info.self, Strategies.self],
        defaultSubcommand: Stream.self)
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's model, limits and live counters.", discussion: Exit.help)
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let client = await server.connect()
        let info: ServerInfo
        do { info = try await client.info() } catch let e as VidrdError { fail("\(e)", Exit.code(for: e)) }
        let l = info.limits
        print("""
            server:      \(info.serverName) (protocol \(client.version))
            model:       \(info.modelName)
            uptime:      \(String(format: "%.1f", Double(info.uptimeMs) / 1000)) s
            connections: \(info.activeConnections)
            sessions:    \(info.activeSessions)
            clips:       \(info.clipsGenerated) generated
            frames:      \(info.framesSent) sent
            queued:      \(info.queuedBytes) bytes
            limits:      max_payload \(l.maxPayload), sessions \(l.maxSessionsPerConnection)/connection \(l.maxSessions)/server, \
            prompt \(l.maxPromptBytes) B, steps \(l.maxSteps), size \(l.maxWidth)×\(l.maxHeight) (multiple of \(l.dimensionMultiple)), \
            frames/clip \(l.maxFramesPerClip), credits \(l.maxCredits), chain \(l.maxChainLength), keepalive \(l.keepaliveIntervalMs) ms, \
            idle \(l.idleTimeoutMs) ms, handshake \(l.handshakeTimeoutMs) ms
            """)
        await client.close()
    }
}

struct Strategies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the daemon's noise strategies and their parameters.", discussion: Exit.help)
    @OptionGroup var server: ServerOptions

    func run() async throws {
        let client = await server.connect()
        let list: StrategyList
        do { list = try await client.listStrategies() } catch let e as VidrdError { fail("\(e)", Exit.code(for: e)) }
        for s in list.strategies {
            print("\(s.name)\(s.summary.isEmpty ? "" : " — \(s.summary)")")
            for p in s.params {
                var range = ""
                if p.minimum != nil || p.maximum != nil {
                    let integer = p.defaultValue.kindName == "int"
                    range = " [\(describeBound(p.minimum, integer: integer))...\(describeBound(p.maximum, integer: integer))]"
                }
                print("    \(p.name): \(p.defaultValue.kindName) = \(describe(p.defaultValue))\(range)\(p.summary.isEmpty ? "" : "  \(p.summary)")")
            }
        }
        print("default chain: \(list.defaultChain.isEmpty ? "(none)" : list.defaultChain.map(describe).joined(separator: ","))")
        await client.close()
    }
}

func describe(_ v: ParamValue) -> String { v.chainText }

func describe(_ s: StrategySpec) -> String { s.chainText }

/// A parameter bound as announced (an f64 on the wire), written as the parameter's kind: an int
/// parameter's `1...256`, not `1.0...256.0`.
func describeBound(_ bound: Double?, integer: Bool) -> String {
    guard let bound else { return "" }
    if integer, bound == bound.rounded(), abs(bound) < 1e15 { return String(Int64(bound)) }
    return "\(bound)"
}

/// `--strategy` text → a chain (`StrategySpec.parseChain`, VidrdProtocol); bad syntax is a usage
/// error naming the token, before anything is sent.
func parseChain(_ text: String) -> [StrategySpec] {
    do {
        return try StrategySpec.parseChain(text)
    } catch {
        fail("--strategy \(text): \(error.message)", Exit.usage)
    }
}

struct Stream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream clips for a prompt until Ctrl-C or --clips K.",
        discussion: """
            Outputs (any combination): --out DIR writes every frame as DIR/frame_NNNNNN.webp exactly as received; \
            --webp FILE writes one animated WebP (the received frames, not re-encoded); --stdout writes raw RGB24 \
            frames (e.g. | ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -); --y4m FILE or --y4m - writes \
            YUV4MPEG2 (size, rate and colour space in its header: | ffplay -, | mpv -, | ffmpeg -i - out.mp4). \
            A progress line goes to stderr when it is a terminal.

            \(Exit.help)
            """)

    @OptionGroup var server: ServerOptions

    @Option(help: "Text prompt.") var prompt: String
    @Option(help: "Negative prompt.") var negativePrompt: String?
    @Option(help: "Seed (default: the server picks one and reports it).") var seed: UInt64?
    @Option(help: "Denoising steps per clip.") var steps: UInt32?
    @Option(help: ArgumentHelp("Scheduler: ddim, dpm++ (DPM-Solver++ 2M, as good in 10-15 steps as DDIM in 25-50) or euler (default: the model's own; fifo needs ddim).", valueName: "name"))
    var scheduler: String?
    @Option(help: "Scheduling weight: this session's share of the daemon's compute relative to others (default 1; the daemon's max_session_weight bounds it).")
    var weight: UInt32?
    @Option(help: "Classifier-free guidance scale (≤ 1 disables it).") var guidance: Double?
    @Option(help: "Frames per clip.") var frames: UInt32?
    @Option(help: "Frame width in pixels.") var width: UInt32?
    @Option(help: "Frame height in pixels.") var height: UInt32?
    @Option(help: "Playback rate of --webp (metadata).") var fps: Double?
    @Option(help: "Strategy chain: NAME[:PARAM=VALUE[:PARAM=VALUE...]], comma-separated, e.g. fnr,pns:alpha=2,dsg:beta=0.3 (default: the server's).")
    var strategy: String?
    @Flag(help: "No strategies: fresh noise for every clip.") var noStrategies = false
    @Option(help: "M, frames each clip shares with the previous one.") var promptFrames: UInt32?
    @Option(help: "Which frames to send: all or new.") var emission: String?
    @Option(help: "WebP quality 0-100 (lossy).") var quality: UInt8?
    @Flag(help: "Lossless WebP.") var lossless = false
    @Option(help: "Stop after K clips (default: until Ctrl-C).") var clips: Int?
    @Option(help: "Clips granted ahead of playback.") var prefetch: UInt32 = 2
    @Option(help: "Reconnections tried when the server drains or the connection breaks; the stream goes on from its continuation (0 = end with the error).")
    var resumeAttempts = ResumePolicy().maxAttempts
    @Option(help: "Write numbered .webp frames into this folder.") var out: String?
    @Option(help: "Write one animated WebP to this file.") var webp: String?
    @Flag(help: "Write raw RGB24 frames to standard output.") var stdout = false
    @Option(help: ArgumentHelp("Write a YUV4MPEG2 stream to this file, or to standard output for -.", valueName: "file|-"))
    var y4m: String?
    @Flag(help: "No progress line or summary.") var quiet = false
    @Option(help: ArgumentHelp(
        "Write frame_number,clip_index,seconds per received frame (seconds on a monotonic clock since the command started) to this CSV file, for tools/bench/stream_stats.py.",
        valueName: "file"))
    var timings: String?

    func validate() throws {
        if let clips, clips < 1 { throw ValidationError("--clips must be at least 1") }
        if let emission, emission != "all" && emission != "new" { throw ValidationError("--emission must be all or new") }
        if noStrategies && strategy != nil { throw ValidationError("--strategy and --no-strategies exclude each other") }
        if prefetch < 1 { throw ValidationError("--prefetch must be at least 1") }
        if resumeAttempts < 0 { throw ValidationError("--resume-attempts must be 0 or more") }
        if let weight, weight < 1 || weight > ProtocolLimits.maxSessionWeight {
            throw ValidationError("--weight must be in 1...\(ProtocolLimits.maxSessionWeight)")
        }
        if let scheduler, SchedulerChoice(name: scheduler) == nil {
            throw ValidationError("--scheduler must be one of \(SchedulerChoice.allCases.map(\.name).joined(separator: ", "))")
        }
        if stdout && y4m == "-" { throw ValidationError("--stdout and --y4m - both write standard output; choose one") }
    }

    func run() async throws {
        // Before connecting, so that the time to the first frame includes connecting.
        let clock = MonotonicClock()
        let timingsFile = timings.map { path -> TimingsFile in
            do { return try TimingsFile(path: path, clock: clock) } catch {
                fail((error as? OutputError)?.message ?? "\(error)", Exit.cantCreate)
            }
        }
        var request = OpenSession(prompt: prompt)
        request.negativePrompt = negativePrompt
        request.seed = seed
        request.steps = steps
        request.scheduler = scheduler.flatMap(SchedulerChoice.init(name:))
        request.weight = weight
        request.guidance = guidance
        request.framesPerClip = frames
        request.width = width
        request.height = height
        request.fps = fps
        if noStrategies { request.strategies = [] } else if let strategy { request.strategies = parseChain(strategy) }
        request.promptFrames = promptFrames
        request.emission = emission.map { $0 == "all" ? .all : .new }
        request.webpQuality = quality
        request.webpLossless = lossless ? true : nil

        if let out {
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                fail("cannot create \(out): \(error.localizedDescription)", Exit.cantCreate)
            }
        }
        let client = await server.connect()
        let session: VidrdSession
        do {
            session = try await client.openSession(
                request, prefetch: prefetch, maxClips: clips, resume: ResumePolicy(maxAttempts: resumeAttempts))
        } catch let e as VidrdError {
            fail("\(e)", Exit.code(for: e))
        }
        let p = session.parameters
        let progress = ProgressLine(enabled: !quiet && isatty(STDERR_FILENO) != 0)
        if !quiet {
            FileHandle.standardError.write(Data(
                "session \(session.id): \(p.width)×\(p.height), \(p.framesPerClip) frames/clip, \(p.steps) steps\(p.scheduler.map { " (\($0.name))" } ?? ""), seed \(p.seed), chain \(p.strategies.isEmpty ? "(none)" : p.strategies.map(describe).joined(separator: ","))\n".utf8))
        }
        var animation: AnimatedWebPFile?
        if let webp {
            do { animation = try AnimatedWebPFile(path: webp, width: Int(p.width), height: Int(p.height), fps: p.fps) } catch {
                fail("\(error)", Exit.cantCreate)
            }
        }

        // Ctrl-C: cancel the stream (CANCEL is sent), finish the outputs, exit 0. A second Ctrl-C exits at once.
        signal(SIGINT, SIG_IGN)
        let interrupts = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        var y4mOutput: Y4MOutput?
        if let y4m {
            do {
                let output = try Y4MOutput(path: y4m, width: Int(p.width), height: Int(p.height))
                try output.writeHeader(fps: p.fps)
                y4mOutput = output
            } catch let e as OutputError {
                fail(e.message, Exit.cantCreate)
            }
        }
        let writer = FrameWriter(out: out, animation: animation, animationPath: webp, stdout: stdout, y4m: y4mOutput)
        let task = Task { () -> Result<Stats, VidrdError> in
            var stats = Stats()
            do {
                for try await event in session {
                    switch event {
                    case .clipStarted(let s):
                        progress.update(clip: s.clipIndex, step: 0, total: p.steps, stats: stats, elapsed: clock.elapsed())
                    case .progress(let pr) where pr.phase == .denoise:
                        progress.update(clip: pr.clipIndex, step: pr.step, total: pr.total, stats: stats, elapsed: clock.elapsed())
                    case .progress:
                        break
                    case .frame(let f):
                        let now = clock.elapsed()
                        if stats.firstFrame == nil { stats.firstFrame = now }
                        if let last = stats.lastFrame { stats.longestGap = max(stats.longestGap, now - last) }
                        stats.lastFrame = now
                        stats.frames += 1
                        try timingsFile?.record(f.frameNumber, clip: f.clipIndex, at: now)
                        try writer.write(f)
                    case .clipEnded(let e):
                        stats.clips += 1
                        progress.update(clip: e.clipIndex, step: p.steps, total: p.steps, stats: stats, elapsed: clock.elapsed())
                    }
                }
                return .success(stats)
            } catch let e as VidrdError {
                return .failure(e)
            } catch let e as OutputError {
                fail(e.message, Exit.cantCreate)
            } catch {
                return .success(stats)  // cancelled
            }
        }
        let interrupted = Counter()
        interrupts.setEventHandler {
            if interrupted.increment() > 1 { exitProcess(130) }
            task.cancel()
        }
        interrupts.resume()
        let result = await task.value
        progress.finish()
        if let animation, let webp {
            if animation.frameCount == 0 {
                animation.discard()
                try? FileManager.default.removeItem(atPath: webp)
                if !quiet { FileHandle.standardError.write(Data("no frames arrived; \(webp) not written\n".utf8)) }
            } else {
                do { try animation.finish() } catch { fail("\(error)", Exit.cantCreate) }
            }
        }
        await client.close()
        timingsFile?.finish()
        switch result {
        case .success(let stats):
            if !quiet {
                let elapsed = clock.elapsed()
                FileHandle.standardError.write(Data(String(
                    format: "%d clips, %d frames in %.2f s (%.2f frames/s), first frame after %.2f s, longest wait between frames %.2f s\n",
                    stats.clips, stats.frames, elapsed, Double(stats.frames) / max(elapsed, 1e-9), stats.firstFrame ?? 0,
                    stats.longestGap).utf8))
                if session.resumptions > 0 {
                    FileHandle.standardError.write(Data("resumed \(session.resumptions) time\(session.resumptions == 1 ? "" : "s") from a continuation\n".utf8))
                }
            }
        case .failure(let e):
            fail("\(e)", Exit.code(for: e))
        }
    }

    struct Stats: Sendable {
        var clips = 0
        var frames = 0
        var firstFrame: Double?
        var lastFrame: Double?
        /// The longest time between two consecutive frames: what a viewer waits at worst.
        var longestGap: Double = 0
    }

    struct OutputError: Error { var message: String }

}

/// Writes received frames to the chosen outputs.
final class FrameWriter: @unchecked Sendable {
    let out: String?
    let animation: AnimatedWebPFile?
    let animationPath: String?
    let stdout: Bool
    let y4m: Y4MOutput?

    init(out: String?, animation: AnimatedWebPFile?, animationPath: String?, stdout: Bool, y4m: Y4MOutput?) {
        self.out = out
        self.animation = animation
        self.animationPath = animationPath
        self.stdout = stdout
        self.y4m = y4m
    }

    func write(_ f: VideoFrame) throws {
        if let out {
            let path = "\(out)/\(FrameFiles.name(Int64(clamping: f.frameNumber)))"
            guard FileManager.default.createFile(atPath: path, contents: Data(f.webp)) else {
                throw Stream.OutputError(message: "cannot write \(path)")
            }
        }
        if let animation {
            do { try animation.add(webp: f.webp) } catch { throw Stream.OutputError(message: "\(animationPath ?? ""): \(error)") }
        }
        if stdout || y4m != nil {
            let image: RGBImage
            do { image = try WebP.decode(f.webp) } catch { throw Stream.OutputError(message: "frame \(f.frameNumber): \(error)") }
            if stdout { FileHandle.standardOutput.write(Data(image.pixels)) }
            try y4m?.write(frame: image)
        }
    }
}


final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

/// `clip 3  step 2/4  12 frames  4.1 frames/s`, redrawn in place on a terminal.
final class ProgressLine: @unchecked Sendable {
    let enabled: Bool
    private var last = Date.distantPast
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(clip: UInt32, step: UInt32, total: UInt32, stats: Stream.Stats, elapsed: Double) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(last) > 0.1 || step == total else { return }
        last = now
        let rate = Double(stats.frames) / max(elapsed, 1e-9)
        let line = String(format: "\r\u{1B}[Kclip %u  step %u/%u  %d frames  %.2f frames/s", clip, step, total, stats.frames, rate)
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
