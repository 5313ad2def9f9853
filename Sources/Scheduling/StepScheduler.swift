/// Which pending work runs next, across sessions: start-time fair queuing (Goyal et al. 1996)
/// over denoising steps, decodes and encodes, with continuous batching of compatible steps.
///
/// A pure value: no threads, no clock of its own (`now` is an argument), no model. The daemon's
/// executor feeds it and carries out its decisions; tests drive it with a fake clock and expect
/// exact orders. Given the same calls with the same arguments it makes the same decisions.
///
/// Fairness: an item's start tag is max(virtual time, its session's previous finish tag); its
/// finish tag adds cost ÷ weight. The pending item with the smallest start tag runs next (ties:
/// the earlier ticket). Virtual time is the start tag of the work in service, and it advances
/// through a long item as it reports progress (`progress`), so a long step that offers preemption
/// points lets shorter steps of other sessions in between its parts instead of holding the machine.
///
/// Anticipation: a session whose step just completed and whose next step would start before the
/// head's (it is owed work: a larger weight, or cheaper steps) is about to submit; the scheduler
/// waits for it up to `batchWait` after its step completed instead of handing its turn to the
/// head. Without it a session's share would depend on how fast its own thread resubmits, and
/// weights would count only when both sessions happened to be pending (Iyer & Druschel's
/// anticipatory scheduling, applied to fair queuing). A session whose clip just ended
/// (`unregister(session:now:)`) is anticipated the same way until its next clip registers, so
/// clip boundaries do not hand its share away either.
///
/// Batching: the head item takes along the other pending items with its batch key, in tag order,
/// up to `maxBatch` items. Each is charged its own cost, so batching changes when work
/// runs, never how much a session is charged. When the batch is not full and a session that is
/// between two steps of the same key will submit soon, the head waits for it up to `batchWait`.
public struct StepScheduler: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Steps (of different sessions) one U-Net call may hold; 1: no batching.
        public var maxBatch: Int
        /// How long a batch that is not full waits for sessions that will submit a compatible step.
        public var batchWait: UInt64
        /// Pending items the scheduler accepts at most (each session has at most one in practice).
        public var maxPending: Int

        public init(maxBatch: Int, batchWait: UInt64, maxPending: Int) {
            self.maxBatch = maxBatch
            self.batchWait = batchWait
            self.maxPending = maxPending
        }
    }

    /// What can share a U-Net call: the same model and input shape (entries, channels, frames,
    /// height, width; a guided step has two entries), so that batched calls hold equal groups.
    public struct BatchKey: Hashable, Sendable, CustomStringConvertible {
        public let model: Int
        public let shape: [Int]
        public init(model: Int = 0, shape: [Int]) {
            self.model = model
            self.shape = shape
        }
        public var description: String { "model \(model) \(shape.map(String.init).joined(separator: "×"))" }
    }

    public enum Kind: Hashable, Sendable {
        /// A U-Net evaluation; batched with items of the same key.
        case denoise(BatchKey)
        /// Work that runs alone (VAE decode, WebP encode).
        case solo
    }

    public struct Item: Hashable, Sendable {
        public let ticket: UInt64
        public let session: UInt64
        public let kind: Kind
        /// Work units (e.g. entries × frames × latent area); what fairness shares out.
        public let cost: UInt64
        public let startTag: UInt64
        /// cost ÷ the session's weight: how far the session's finish tag moved for it.
        public let span: UInt64
        public let arrival: UInt64
    }

    public enum Decision: Equatable, Sendable {
        /// Run these items now, as one call when they are denoise items.
        case run([Item])
        /// Nothing may run before this time unless another item arrives.
        case wait(until: UInt64)
        case idle
    }

    public enum SchedulerError: Error, Equatable, CustomStringConvertible {
        case queueFull(limit: Int)
        case unknownSession(UInt64)
        case alreadyPending(UInt64)

        public var description: String {
            switch self {
            case .queueFull(let l): "the step queue is full (\(l) pending items)"
            case .unknownSession(let s): "session \(s) is not registered with the scheduler"
            case .alreadyPending(let s): "session \(s) already has a step waiting"
            }
        }
    }

    struct SessionState: Sendable {
        var weight: UInt64
        var finishTag: UInt64
        /// The key of the session's latest denoise step while it works between two steps of a clip.
        var between: BatchKey?
        var pending: UInt64?
        var running = false
        /// When its latest step completed (`completed(_:now:)`), while it is between steps.
        var completedAt: UInt64?
    }

    public let settings: Settings
    public private(set) var virtualTime: UInt64 = 0
    private var sessions: [UInt64: SessionState] = [:]
    private var pending: [UInt64: Item] = [:]
    /// Sessions whose clip ended within the last `batchWait`: their finish tag and when.
    private var departed: [UInt64: (finishTag: UInt64, at: UInt64)] = [:]
    private var nextTicket: UInt64 = 1

    public init(settings: Settings) { self.settings = settings }

    public var pendingCount: Int { pending.count }

    /// Whether the session has a step waiting.
    public func hasPending(session: UInt64) -> Bool { sessions[session]?.pending != nil }
    public var sessionCount: Int { sessions.count }

    /// A session starts a clip, with a weight (its share relative to others; 1 is everyone's
    /// default) and the finish tag its previous clip left (`unregister`), so that its history
    /// counts across clips.
    public mutating func register(session: UInt64, weight: UInt64 = 1, finishTag: UInt64 = 0) {
        departed[session] = nil
        sessions[session] = SessionState(weight: Swift.max(1, weight), finishTag: finishTag)
    }

    /// A session's clip is over: its pending item, if any, is dropped; returns its finish tag.
    /// With `now`, its next clip is anticipated for `batchWait` (type comment).
    @discardableResult
    public mutating func unregister(session: UInt64, now: UInt64? = nil) -> UInt64? {
        if let t = sessions[session]?.pending { pending[t] = nil }
        guard let s = sessions.removeValue(forKey: session) else { return nil }
        if let now, settings.batchWait > 0 { departed[session] = (s.finishTag, now) }
        return s.finishTag
    }

    /// Queues one item; returns its ticket.
    public mutating func submit(session: UInt64, kind: Kind, cost: UInt64, now: UInt64) throws(SchedulerError) -> UInt64 {
        guard var s = sessions[session] else { throw .unknownSession(session) }
        guard s.pending == nil else { throw .alreadyPending(session) }
        guard pending.count < settings.maxPending else { throw .queueFull(limit: settings.maxPending) }
        let ticket = nextTicket
        nextTicket += 1
        let start = Swift.max(virtualTime, s.finishTag)
        let span = Swift.max(1, cost / s.weight)
        s.finishTag = start + span
        s.pending = ticket
        s.completedAt = nil
        if case .denoise(let key) = kind { s.between = key }
        sessions[session] = s
        pending[ticket] = Item(ticket: ticket, session: session, kind: kind, cost: cost, startTag: start, span: span, arrival: now)
        return ticket
    }

    /// Withdraws a pending item (its session was cancelled); true if it was still pending.
    @discardableResult
    public mutating func withdraw(ticket: UInt64) -> Bool {
        guard let item = pending.removeValue(forKey: ticket) else { return false }
        sessions[item.session]?.pending = nil
        sessions[item.session]?.between = nil
        return true
    }

    /// The next work to start. The returned items are running until `completed`.
    public mutating func next(now: UInt64) -> Decision {
        guard let head = pending.values.min(by: Self.order) else { return .idle }
        if let owed = anticipation(before: head, now: now) { return .wait(until: owed) }
        var batch = [head]
        if case .denoise(let key) = head.kind {
            let mates = pending.values.filter { $0.ticket != head.ticket && $0.kind.batchKey == key }.sorted(by: Self.order)
            batch += mates.prefix(Swift.max(0, settings.maxBatch - 1))
            // Worth waiting for: sessions between two steps of this key (not pending, not running).
            let coming = sessions.values.filter { $0.pending == nil && !$0.running && $0.between == key }.count
            let deadline = batch.map(\.arrival).min().map { $0 + settings.batchWait } ?? now
            if coming > 0, batch.count < settings.maxBatch, settings.batchWait > 0, now < deadline {
                return .wait(until: deadline)
            }
        }
        start(batch)
        return .run(batch)
    }

    /// At a preemption point of the running `batch`, `done` (0...1) of its work behind it: the
    /// items that should run before its rest, those whose start tags are below the point the
    /// batch's head has reached in virtual time (denoise items batched as in `next`, without
    /// waiting). Empty when the long work should go on.
    public mutating func preempting(_ batch: [Item], done: Double) -> [Item] {
        guard let long = batch.first else { return [] }
        let reached = long.startTag + UInt64(Double(long.span) * Swift.min(Swift.max(done, 0), 1))
        virtualTime = Swift.max(virtualTime, reached)
        guard let head = pending.values.min(by: Self.order), head.startTag < reached else { return [] }
        var chosen = [head]
        if case .denoise(let key) = head.kind {
            let mates = pending.values.filter { $0.ticket != head.ticket && $0.kind.batchKey == key && $0.startTag < reached }
            chosen += mates.sorted(by: Self.order).prefix(Swift.max(0, settings.maxBatch - 1))
        }
        start(chosen)
        return chosen
    }

    /// The items of a batch are done; their sessions are between steps again. With `now`, a
    /// session whose next step would come before the head's is anticipated (type comment).
    public mutating func completed(_ items: [Item], now: UInt64? = nil) {
        for i in items {
            sessions[i.session]?.running = false
            sessions[i.session]?.completedAt = now
        }
    }

    /// The earliest deadline of the sessions owed a turn before `head`, if any is still worth
    /// waiting for at `now`.
    private mutating func anticipation(before head: Item, now: UInt64) -> UInt64? {
        guard settings.batchWait > 0 else { return nil }
        departed = departed.filter { now < $0.value.at + settings.batchWait }
        var owed: [(finishTag: UInt64, since: UInt64)] = departed.values.map { ($0.finishTag, $0.at) }
        for s in sessions.values where s.pending == nil && !s.running {
            if let done = s.completedAt { owed.append((s.finishTag, done)) }
        }
        var earliest: UInt64?
        for o in owed where Swift.max(virtualTime, o.finishTag) < head.startTag {
            let deadline = o.since + settings.batchWait
            if now < deadline { earliest = Swift.min(earliest ?? deadline, deadline) }
        }
        return earliest
    }

    private mutating func start(_ batch: [Item]) {
        virtualTime = Swift.max(virtualTime, batch[0].startTag)
        for i in batch {
            pending[i.ticket] = nil
            sessions[i.session]?.pending = nil
            sessions[i.session]?.running = true
        }
    }

    static func order(_ a: Item, _ b: Item) -> Bool { (a.startTag, a.ticket) < (b.startTag, b.ticket) }
}

extension StepScheduler.Kind {
    var batchKey: StepScheduler.BatchKey? {
        if case .denoise(let k) = self { return k }
        return nil
    }
}
