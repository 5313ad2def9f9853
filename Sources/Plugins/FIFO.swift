import VidrdRuntime

/// FIFO-Diffusion (Kim et al. 2024, "FIFO-Diffusion: Generating Infinite Videos from Text without
/// Training"): diagonal denoising. The stream keeps a queue of L = n·f latent frames whose noise
/// rises from head to tail, one DDIM level apart (the L-step schedule). Every iteration runs each
/// frame of the queue one level down with the U-Net's per-frame timesteps, in windows of f frames
/// (latent partitioning: n windows; with lookahead denoising, 2n windows of stride f/2 of which each
/// keeps only its later half, so every frame is predicted with f/2 less noisy frames before it).
/// The head is then clean: it is emitted, and a new noise frame enters at the tail. Every frame
/// leaves the queue once, after exactly L steps, so nothing is replayed or reversed, and a clip
/// (N emitted frames) costs N iterations.
///
/// The first clip fills the queue: the first f noise frames are sampled as an ordinary clip of L
/// steps, and queue position q takes that trajectory's latents at its level (the U-Net input at step
/// L−1−q) of frame min(q, f−1). FIFO-Diffusion's code instead forward-noises the clean clip, which
/// needs fresh noise for every position; the trajectory lies on the model's own path and needs
/// none. The base clip's f noise frames and the first clip's N new tail frames are, in order, the
/// clip's initial noise followed by as many extra draws of the stream's noise source as they need
/// (one when f ≤ N); the tail frames of clip k ≥ 1 are that clip's draw (after the chain's noise claims, so a `base`
/// strategy such as `freenoise` shapes them).
public struct FIFOStrategy: NoiseStrategy {
    /// n; 0 derives it from the stream's steps: n = max(1, S / f), so that L = n·f ≤ S.
    public let partitions: Int
    /// f, frames per U-Net call; 0 = the stream's frames per clip N.
    public let window: Int
    public let lookahead: Bool
    /// The queue, head first: `context` clean frames (lookahead only), then L noisy frames.
    private(set) var queue: [[Float]] = []

    public init(partitions: Int = 0, window: Int = 0, lookahead: Bool = false) {
        self.partitions = partitions
        self.window = window
        self.lookahead = lookahead
    }

    public var capabilities: StrategyCapabilities { StrategyCapabilities(generates: true) }

    /// The queue's geometry and timesteps for one stream.
    public struct Plan: Sendable, Equatable {
        /// f, n, L = n·f, and the clean context frames ahead of the head (f/2 with lookahead).
        public let window: Int, partitions: Int, length: Int, context: Int
        /// The L-step DDIM schedule, noisiest first.
        public let timesteps: [Int]
        /// Per queue position (context first): the U-Net timestep and DDIM's target.
        public let positions: [FrameTimestep]
        /// U-Net calls of one iteration: queue positions `start..<start+window`, of which `update`
        /// are written back.
        public let windows: [(start: Int, update: Range<Int>)]

        public static func == (a: Plan, b: Plan) -> Bool {
            a.window == b.window && a.partitions == b.partitions && a.context == b.context && a.positions == b.positions
                && a.windows.map(\.start) == b.windows.map(\.start) && a.windows.map(\.update) == b.windows.map(\.update)
        }
    }

    /// The diagonal queue moves every frame at its own timestep, which only DDIM can do (the
    /// stream refuses fifo under another scheduler before this runs: `VideoStream.checkScheduler`).
    public func check(shape: ClipShape, scheduler: DiffusionScheduler) throws {
        _ = try plan(shape: shape, scheduler: try scheduler.frameTimestepScheduler())
    }

    /// f, n and the clean context frames for a stream of `shape`: what `plan` derives before it
    /// needs the scheduler (also the size of a saved queue).
    func geometry(shape: ClipShape) -> (window: Int, partitions: Int, context: Int) {
        let f = window == 0 ? shape.frames : window
        let n = partitions == 0 ? Swift.max(1, shape.steps / Swift.max(f, 1)) : partitions
        return (f, n, lookahead ? f / 2 : 0)
    }

    public func plan(shape: ClipShape, scheduler: DDIMScheduler) throws -> Plan {
        let (f, n, context) = geometry(shape: shape)
        guard f >= 1 else { throw PluginError.invalidConfiguration("fifo: window must be ≥ 1, got \(f)") }
        if lookahead, f < 2 || f % 2 != 0 {
            throw PluginError.invalidConfiguration("fifo: lookahead needs an even window of at least 2 frames, got \(f)")
        }
        let length = n * f
        guard length <= StreamConfiguration.maxSteps else {
            throw PluginError.invalidConfiguration("fifo: queue of \(n) × \(f) = \(length) steps exceeds \(StreamConfiguration.maxSteps)")
        }
        let ts = try scheduler.timesteps(steps: length)
        // Noisy position q sits at level ts[L−1−q]: the head (q = 0) is one step from clean.
        let noisy = (0..<length).map { q -> FrameTimestep in
            let t = ts[length - 1 - q]
            return FrameTimestep(timestep: t, previous: scheduler.previousTimestep(t, steps: length))
        }
        // Context frames are clean; like FIFO-Diffusion, the U-Net sees them at the lowest level.
        let positions = [FrameTimestep](repeating: noisy[0], count: context) + noisy
        let windows: [(start: Int, update: Range<Int>)] = lookahead
            ? (0..<(2 * n)).map { w in let s = w * (f / 2); return (s, (s + f / 2)..<(s + f)) }
            : (0..<n).map { w in (w * f, (w * f)..<(w * f + f)) }
        return Plan(window: f, partitions: n, length: length, context: context, timesteps: ts, positions: positions, windows: windows)
    }

    public mutating func generateClip(_ clip: ClipContext, initialNoise: Tensor, sampler: inout ClipSampler) throws -> Tensor {
        let p = try plan(shape: clip.shape, scheduler: try sampler.scheduler.frameTimestepScheduler())
        let n = clip.shape.frames
        var noise = (0..<n).map { initialNoise.latentFrame($0) }
        let filling = queue.isEmpty
        sampler.plannedSteps = (filling ? p.length : 0) + n * p.windows.count
        if filling {
            while noise.count < p.window + n {
                let extra = try sampler.drawNoise(shape: clip.shape.latentShape)
                noise += (0..<n).map { extra.latentFrame($0) }
            }
            let base = Self.latents(noise[0..<p.window], shape: clip.shape)
            let (clean, inputs) = try sampler.sample(base, steps: p.length)
            let head = clean.latentFrame(0)
            queue = [[Float]](repeating: head, count: p.context)
                + (0..<p.length).map { q in inputs[p.length - 1 - q].latentFrame(Swift.min(q, p.window - 1)) }
            noise.removeFirst(p.window)
        }
        guard queue.count == p.context + p.length else {
            throw PluginError.strategyFailed(strategy: "fifo", reason: "queue holds \(queue.count) frames, the stream's settings need \(p.context + p.length)")
        }
        var emitted: [[Float]] = []
        emitted.reserveCapacity(n)
        for i in 0..<n {
            // Every window reads the queue as it was when the iteration began (FIFO-Diffusion runs
            // them from the tail, which amounts to the same), so the order of the calls is free.
            var next = queue
            for w in p.windows {
                let range = w.start..<(w.start + p.window)
                let input = Self.latents(queue[range], shape: clip.shape)
                let out = try sampler.step(input, frameTimesteps: Array(p.positions[range]))
                for pos in w.update { next[pos] = out.latentFrame(pos - w.start) }
            }
            queue = next
            emitted.append(queue[p.context])
            queue.removeFirst()
            queue.append(noise[i])
        }
        return Self.latents(emitted[...], shape: clip.shape)
    }

    /// Frames (each `C × h × w`, channel-major) → latents `[1, C, F, h, w]`.
    static func latents(_ frames: ArraySlice<[Float]>, shape: ClipShape) -> Tensor {
        var out = Tensor(zeros: [1, shape.channels, frames.count, shape.height, shape.width])
        for (k, frame) in frames.enumerated() { out.setLatentFrame(k, frame) }
        return out
    }
}

/// FIFO's state is its queue: empty before the first clip fills it, then the `context` clean
/// frames and the L noisy ones, each `C × h × w`.
extension FIFOStrategy: ResumableStrategy {
    public static var stateFormatVersion: UInt32 { 1 }

    /// Frames of a full queue on a stream of `shape`.
    func queueCapacity(shape: ClipShape) -> Int {
        let (f, n, context) = geometry(shape: shape)
        return context + n * f
    }

    public func saveState(into writer: inout StateWriter) {
        writer.count(queue.count)
        for frame in queue { writer.f32Array(frame) }
    }

    public mutating func restoreState(from reader: inout StateReader, shape: ClipShape) throws {
        let full = queueCapacity(shape: shape)
        let count = try reader.count("fifo queue frames", max: full)
        guard count == 0 || count == full else {
            throw StateCodingError("fifo queue holds \(count) frames, this stream's settings need 0 or \(full)")
        }
        var q: [[Float]] = []
        q.reserveCapacity(count)
        for k in 0..<count { q.append(try reader.f32Array("fifo queue frame \(k)", count: shape.frameSize)) }
        queue = q
    }

    public func stateSizeBound(shape: ClipShape) -> Int {
        StateWriter.countSize + queueCapacity(shape: shape) * StateWriter.f32ArraySize(shape.frameSize)
    }
}
