import Foundation
import VidrdPlugins
import VidrdRuntime
import VidrdScheduling

/// Runs every session's clips step by step on a fixed set of compute threads.
///
/// A clip's control flow (its strategies' hooks, FIFO's queue, the DDIM updates) runs on a thread
/// of its own: a clip is a job whose state lives on that thread between two model calls, so any
/// strategy, generating ones and C plugins included, is resumable at every U-Net evaluation
/// without being rewritten as a state machine. Every U-Net evaluation, VAE decode and WebP encode
/// is a step handed to the `StepScheduler`, which decides what the `workers` compute threads run:
/// fair by work across sessions, compatible U-Net steps batched into one call. Long calls offer
/// preemption points (between U-Net and decoder layers) where a compute thread runs other
/// sessions' due steps first, so one heavy clip cannot hold the machine for a whole step.
final class StepExecutor: ClipExecutor, @unchecked Sendable {
    struct Settings: Sendable {
        var workers: Int
        /// Cores each compute thread's calls split over (`ComputeThreads.withLimit`); nil: the
        /// cores shared among the calls running at the moment (`CoreShare`).
        var threadsPerWorker: Int?
        var maxBatch: Int
        var batchWaitNanoseconds: UInt64
        /// Sessions with a clip in flight, at most (each has at most one step pending).
        var maxSessions: Int
    }

    /// What a pending step carries to the compute thread, and what comes back.
    final class Ticket: @unchecked Sendable {
        enum Work {
            case denoise(input: Tensor, timesteps: [Float], conditioning: UNet3DConditionModel.TextConditioning,
                         pipeline: TextToVideoPipeline)
            /// Returns its tensor (a decode) or nil (work that hands its result back itself).
            case solo((inout Workspace, ((Double) -> Void)?) throws -> Tensor?)
        }
        let work: Work
        var output: Result<Tensor?, Error>?
        init(_ work: Work) { self.work = work }
    }

    private let settings: Settings
    private let condition = NSCondition()
    private var scheduler: StepScheduler
    private var tickets: [UInt64: Ticket] = [:]
    private var stopping = false
    private var clipThreads = 0
    /// Calls (batches) running on compute threads now, preemption points' nested calls included.
    private var callsRunning = 0
    private let clock: @Sendable () -> UInt64
    private let exited = DispatchSemaphore(value: 0)
    /// The cores, shared among the calls the compute threads run at the moment (unless
    /// `threadsPerWorker` fixes each thread's width).
    private let cores = CoreShare()
    private let mailbox: Mailbox
    private let statistics: Locked<StepStatistics>
    private let metrics: DaemonMetrics

    init(settings: Settings, mailbox: Mailbox, statistics: Locked<StepStatistics>, metrics: DaemonMetrics = DaemonMetrics(),
         clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.nanoseconds }) {
        self.settings = settings
        self.mailbox = mailbox
        self.statistics = statistics
        self.metrics = metrics
        self.clock = clock
        scheduler = StepScheduler(settings: .init(
            maxBatch: max(1, settings.maxBatch), batchWait: settings.batchWaitNanoseconds,
            maxPending: max(1, settings.maxSessions)))
        for i in 0..<max(1, settings.workers) {
            let width = settings.threadsPerWorker
            let thread = Thread { [self] in
                if let width { ComputeThreads.withLimit(width) { computeLoop() } } else { computeLoop() }
                exited.signal()
            }
            thread.name = "vidrd-compute-\(i)"
            thread.stackSize = 16 << 20
            thread.start()
        }
    }

    // MARK: - Clips

    /// Starts a clip on a thread of its own; its model calls become scheduled steps.
    func submit(_ job: ClipJob) {
        let mailbox = self.mailbox
        condition.lock()
        clipThreads += 1
        scheduler.register(session: job.sessionKey, weight: job.generator.weight, finishTag: job.generator.finishTag)
        condition.unlock()
        let steps = SessionSteps(executor: self, session: job.sessionKey, cancelled: job.generator.cancelled)
        job.generator.stream.setModelExecutor(steps)
        // The clip leaves the scheduler before the loop learns it finished: the loop may start the
        // session's next clip at once, and that clip's registration must not be undone by this one.
        let post: @Sendable (WorkerEvent) -> Void = { [self] event in
            if case .finished = event {
                condition.lock()
                job.generator.finishTag = scheduler.unregister(session: job.sessionKey, now: clock()) ?? job.generator.finishTag
                clipThreads -= 1
                condition.broadcast()
                condition.unlock()
            }
            mailbox.post(event)
        }
        let thread = Thread { ClipRunner.run(job, steps: steps, post: post) }
        thread.name = "vidrd-clip-\(job.sessionKey)"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Waits for the clips in flight to end, then stops the compute threads.
    func stopAndJoin() {
        condition.lock()
        while clipThreads > 0 { condition.wait() }
        stopping = true
        condition.broadcast()
        condition.unlock()
        for _ in 0..<max(1, settings.workers) { exited.wait() }
    }

    // MARK: - Steps (called on clip threads)

    /// Queues one step and blocks until a compute thread ran it. A cancelled session's step that
    /// has not started is withdrawn at once (`ModelError.cancelled`); one that runs is finished.
    func perform(
        session: UInt64, kind: StepScheduler.Kind, label: DaemonMetrics.StepKind, cost: UInt64, cancelled: CancelFlag, _ work: Ticket.Work
    ) throws -> Tensor? {
        let ticket = Ticket(work)
        condition.lock()
        defer { condition.unlock() }
        let id: UInt64
        let submitted = clock()
        do {
            id = try scheduler.submit(session: session, kind: kind, cost: cost, now: submitted)
        } catch {
            throw ModelError.invalidInput("step not accepted: \(error)")
        }
        tickets[id] = ticket
        publishDepth()
        condition.broadcast()
        while ticket.output == nil {
            if cancelled.isSet, scheduler.withdraw(ticket: id) {
                tickets[id] = nil
                publishDepth()
                throw ModelError.cancelled
            }
            // Cancellation is a flag another thread sets; look at it at least every 20 ms.
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.02))
        }
        tickets[id] = nil
        metrics.recordStep(label, seconds: Double(clock() &- submitted) / 1e9)
        switch ticket.output {
        case .success(let t)?: return t
        case .failure(let e)?: throw e
        case nil: throw ModelError.cancelled
        }
    }

    // MARK: - Compute threads

    private func computeLoop() {
        var workspace = Workspace()
        var nested = Workspace()
        condition.lock()
        while !stopping {
            switch scheduler.next(now: clock()) {
            case .idle:
                condition.wait()
            case .wait(let until):
                let now = clock()
                if until > now { _ = condition.wait(until: Date(timeIntervalSinceNow: Double(until - now) / 1e9)) }
            case .run(let items):
                let work = items.map { tickets[$0.ticket] }
                publishDepth()
                callStarted()
                condition.unlock()
                let preempt: (Double) -> Void = { [self] done in runPreempting(items, done: done, workspace: &nested) }
                let started = clock()
                // Steps run at this call's preemption points share its participation.
                let results = settings.threadsPerWorker == nil
                    ? cores.participate { Self.execute(items, work, workspace: &workspace, preemption: preempt) }
                    : Self.execute(items, work, workspace: &workspace, preemption: preempt)
                // The outer call's time includes the steps run at its preemption points: counting
                // those again would make a thread busier than the wall clock.
                metrics.workerBusySeconds.increment(by: Double(clock() &- started) / 1e9)
                condition.lock()
                callsRunning -= 1
                finish(items, work, results)
            }
        }
        condition.unlock()
    }

    /// At a preemption point of a long call: runs the steps that are due before its rest. A
    /// session served here usually submits its next step a moment later (it only computes its
    /// next input): the point waits for it up to `batch_wait_ms`, so that a light session gets
    /// its fair share between two points instead of one step per point.
    private func runPreempting(_ running: [StepScheduler.Item], done: Double, workspace: inout Workspace) {
        var served: [UInt64] = []
        condition.lock()
        defer { condition.unlock() }
        while !stopping {
            var due = scheduler.preempting(running, done: done)
            if due.isEmpty, !served.isEmpty, settings.batchWaitNanoseconds > 0 {
                let deadline = clock() + settings.batchWaitNanoseconds
                while !stopping, !served.contains(where: { scheduler.hasPending(session: $0) }), clock() < deadline {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - min(clock(), deadline)) / 1e9))
                }
                served = []
                due = scheduler.preempting(running, done: done)
            }
            if due.isEmpty { return }
            served = due.map(\.session)
            let work = due.map { tickets[$0.ticket] }
            publishDepth()
            callStarted()
            condition.unlock()
            // Nested calls offer no preemption points of their own: one level keeps this bounded.
            let results = Self.execute(due, work, workspace: &workspace, preemption: nil)
            condition.lock()
            callsRunning -= 1
            finish(due, work, results, preempting: true)
        }
    }

    /// Called with the lock held, as a call starts.
    private func callStarted() {
        callsRunning += 1
        let running = callsRunning
        statistics.withLock { $0.mostCallsAtOnce = max($0.mostCallsAtOnce, running) }
    }

    /// Called with the lock held, whenever steps were queued, started or withdrawn.
    private func publishDepth() {
        metrics.stepsPending.set(to: Double(scheduler.pendingCount))
    }

    /// Called with the lock held.
    private func finish(_ items: [StepScheduler.Item], _ work: [Ticket?], _ results: [Result<Tensor?, Error>], preempting: Bool = false) {
        statistics.withLock { $0.record(items, preempting: preempting) }
        scheduler.completed(items, now: clock())
        for (t, r) in zip(work, results) { t?.output = r }
        condition.broadcast()
    }

    /// Runs one scheduled batch: denoise items as a single U-Net call, a solo item alone.
    static func execute(_ items: [StepScheduler.Item], _ work: [Ticket?], workspace: inout Workspace,
                        preemption: ((Double) -> Void)?) -> [Result<Tensor?, Error>] {
        var calls: [BatchedNoisePrediction.Entry] = []
        var pipeline: TextToVideoPipeline?
        var results = [Result<Tensor?, Error>](repeating: .failure(ModelError.cancelled), count: items.count)
        for (i, w) in work.enumerated() {
            switch w?.work {
            case .denoise(let input, let timesteps, let conditioning, let p)?:
                calls.append(.init(input: input, timesteps: timesteps, conditioning: conditioning))
                pipeline = p
            case .solo(let body)?:
                results[i] = Result { try body(&workspace, preemption) }
            case nil:
                results[i] = .failure(ModelError.invalidInput("step \(items[i].ticket) has no work"))
            }
        }
        if let pipeline, !calls.isEmpty {
            let outputs = Result { try BatchedNoisePrediction.run(calls, unet: pipeline.unet, workspace: &workspace, preemption: preemption) }
            var k = 0
            for (i, w) in work.enumerated() {
                guard case .denoise? = w?.work else { continue }
                results[i] = outputs.map { $0[k] }
                k += 1
            }
        }
        return results
    }
}

/// What the step executor has run since the daemon started.
public struct StepStatistics: Sendable, Equatable {
    /// U-Net calls, and the batch entries and sessions' steps they held.
    public var unetCalls: UInt64 = 0
    public var unetEntries: UInt64 = 0
    public var unetSteps: UInt64 = 0
    /// The most sessions' steps one U-Net call held.
    public var largestBatch = 0
    /// Decodes and encodes.
    public var soloSteps: UInt64 = 0
    /// Steps run at a preemption point of another call.
    public var preemptingSteps: UInt64 = 0
    /// The most calls (U-Net batches, decodes, encodes) that ran at the same time: above 1 only
    /// with several compute threads, or a preemption point's call inside a running one.
    public var mostCallsAtOnce = 0

    mutating func record(_ items: [StepScheduler.Item], preempting: Bool) {
        let denoise = items.filter { if case .denoise = $0.kind { true } else { false } }
        if !denoise.isEmpty {
            unetCalls += 1
            unetSteps += UInt64(denoise.count)
            for case .denoise(let key) in denoise.map(\.kind) { unetEntries += UInt64(key.shape.first ?? 1) }
            largestBatch = max(largestBatch, denoise.count)
        }
        soloSteps += UInt64(items.count - denoise.count)
        if preempting { preemptingSteps += UInt64(items.count) }
    }
}

/// A session's view of the executor: what its stream's model calls go through (the stream's
/// `ModelExecutor`) and how its clip runner encodes frames.
struct SessionSteps: ModelExecutor {
    let executor: StepExecutor
    let session: UInt64
    let cancelled: CancelFlag

    func predictNoise(_ input: Tensor, timesteps: [Float], conditioning: UNet3DConditionModel.TextConditioning,
                      pipeline: TextToVideoPipeline) throws -> Tensor {
        let key = StepScheduler.BatchKey(shape: input.shape)
        let out = try executor.perform(
            session: session, kind: .denoise(key), label: .unet, cost: StepCost.denoise(input.shape), cancelled: cancelled,
            .denoise(input: input, timesteps: timesteps, conditioning: conditioning, pipeline: pipeline))
        guard let out else { throw ModelError.invalidInput("the U-Net step returned nothing") }
        return out
    }

    func decode(latents: Tensor, temporal: Bool, pipeline: TextToVideoPipeline) throws -> Tensor {
        let out = try executor.perform(
            session: session, kind: .solo, label: .decode, cost: StepCost.decode(latents.shape), cancelled: cancelled,
            .solo({ ws, preemption in try pipeline.decode(latents: latents, temporal: temporal, workspace: &ws, preemption: preemption) }))
        guard let out else { throw ModelError.invalidInput("the decode step returned nothing") }
        return out
    }

    /// Runs `body` as a solo step (WebP encoding) and returns what it made.
    func solo<T: Sendable>(cost: UInt64, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        _ = try executor.perform(session: session, kind: .solo, label: .encode, cost: cost, cancelled: cancelled, .solo({ _, _ in
            box.value = try body()
            return nil
        }))
        guard let v = box.value else { throw ModelError.invalidInput("a step returned nothing") }
        return v
    }
}

/// Carries a solo step's result from the compute thread back to the clip thread (the executor's
/// lock orders the write before the read).
final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}

/// What steps cost the scheduler, in work units of one latent pixel of one frame of one U-Net
/// batch entry. Estimates from the shapes alone, so that the schedule is a function of the
/// arrivals, not of timing noise. Decode and encode factors: measured on the embedded model
/// (docs/DAEMON.md, "Scheduling").
enum StepCost {
    /// A U-Net call on latents `[b, C, F, h, w]`.
    static func denoise(_ shape: [Int]) -> UInt64 {
        guard shape.count == 5 else { return 1 }
        return UInt64(max(1, shape[0] * shape[2] * shape[3] * shape[4]))
    }

    /// Decoding latents `[1, C, F, h, w]`.
    static func decode(_ shape: [Int]) -> UInt64 {
        guard shape.count == 5 else { return 1 }
        return UInt64(max(1, decodeUnitsPerLatentPixel * shape[2] * shape[3] * shape[4]))
    }

    /// WebP-encoding one frame of `pixels` pixels.
    static func encode(pixels: Int) -> UInt64 { UInt64(max(1, pixels / encodePixelsPerUnit)) }

    static let decodeUnitsPerLatentPixel = 4
    static let encodePixelsPerUnit = 256
}
