import Testing
import VidrdScheduling

/// The step scheduler on a fake clock: exact orders against start-time fair queuing's definition
/// (start tag = max(virtual time, the session's finish tag); smallest start tag first; ties by
/// ticket), batch formation and waiting, preemption points, bounds and determinism.
@Suite struct StepSchedulerTests {
    typealias S = StepScheduler
    static let key8 = S.BatchKey(shape: [2, 4, 8, 8, 8])
    static let key16 = S.BatchKey(shape: [2, 4, 64, 16, 16])

    func scheduler(maxBatch: Int = 1, wait: UInt64 = 0, maxPending: Int = 64) -> S {
        S(settings: .init(maxBatch: maxBatch, batchWait: wait, maxPending: maxPending))
    }

    /// Drives sessions that always have one more step of `cost` (each resubmits as soon as its
    /// step ran) for `rounds` decisions; returns the sessions in the order their steps ran.
    func run(_ s: inout S, costs: [UInt64: UInt64], kind: (UInt64) -> S.Kind = { _ in .solo }, rounds: Int) throws -> [[UInt64]] {
        var order: [[UInt64]] = []
        for session in costs.keys.sorted() { _ = try s.submit(session: session, kind: kind(session), cost: costs[session]!, now: 0) }
        for r in 0..<rounds {
            guard case .run(let items) = s.next(now: UInt64(r)) else { Issue.record("nothing to run in round \(r)"); break }
            order.append(items.map(\.session))
            s.completed(items)
            for i in items { _ = try s.submit(session: i.session, kind: kind(i.session), cost: costs[i.session]!, now: UInt64(r)) }
        }
        return order
    }

    @Test func equalSessionsAlternateInArrivalOrder() throws {
        var s = scheduler()
        for k in [1, 2, 3] as [UInt64] { s.register(session: k) }
        let order = try run(&s, costs: [1: 10, 2: 10, 3: 10], rounds: 9)
        #expect(order == [[1], [2], [3], [1], [2], [3], [1], [2], [3]])
    }

    @Test func aSessionTenTimesCostlierGetsATenthOfTheSteps() throws {
        var s = scheduler()
        s.register(session: 1)
        s.register(session: 2)
        let order = try run(&s, costs: [1: 10, 2: 100], rounds: 22).map { $0[0] }
        // Session 1's start tags 0, 10, 20, …; session 2's 0, 100, 200. Equal tags: the earlier ticket.
        // Session 1's tags 10…90 run before the tie at 100, which session 2's earlier ticket wins.
        #expect(order == [1, 2] + [UInt64](repeating: 1, count: 9) + [2] + [UInt64](repeating: 1, count: 10))
        #expect(order.filter { $0 == 1 }.count == 20 && order.filter { $0 == 2 }.count == 2)
    }

    @Test func weightsShareInProportion() throws {
        var s = scheduler()
        s.register(session: 1, weight: 3)
        s.register(session: 2, weight: 1)
        let order = try run(&s, costs: [1: 30, 2: 30], rounds: 16).map { $0[0] }
        #expect(order.filter { $0 == 1 }.count == 12 && order.filter { $0 == 2 }.count == 4)
        // Spans 10 and 30: session 1's tags 0, 10, 20, 30, …; session 2's 0, 30, 60, … (ties: earlier ticket).
        #expect(order == [1, 2, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1])
    }

    /// A session owed work (weight 3) whose thread resubmits 2 time units after its step completed,
    /// while the weight-1 session resubmits at once; steps take 10. Without anticipation the
    /// weight-1 session takes every other turn (session 1's tag is pulled up to virtual time each
    /// time it was not pending); with it the 3 : 1 order of `weightsShareInProportion` holds.
    @Test func anOwedSessionIsAnticipatedForBatchWait() throws {
        func order(wait: UInt64) throws -> [UInt64] {
            var s = scheduler(wait: wait)
            s.register(session: 1, weight: 3)
            s.register(session: 2, weight: 1)
            _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 30, now: 0)
            _ = try s.submit(session: 2, kind: .denoise(Self.key8), cost: 30, now: 0)
            var ran: [UInt64] = []
            var now: UInt64 = 0
            var resubmit1: UInt64?
            func due() throws {
                if let t = resubmit1, t <= now {
                    _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 30, now: t)
                    resubmit1 = nil
                }
            }
            while ran.count < 12 {
                try due()
                switch s.next(now: now) {
                case .run(let items):
                    ran += items.map(\.session)
                    now += 10
                    s.completed(items, now: now)
                    if items.contains(where: { $0.session == 2 }) {
                        _ = try s.submit(session: 2, kind: .denoise(Self.key8), cost: 30, now: now)
                    } else {
                        resubmit1 = now + 2
                    }
                case .wait(let until):
                    #expect(until > now)
                    now = Swift.min(until, resubmit1 ?? until)
                case .idle:
                    now = resubmit1 ?? now
                }
            }
            return ran
        }
        let anticipating = try order(wait: 5)
        #expect(anticipating == [1, 2, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1], "\(anticipating)")
        let greedy = try order(wait: 0)
        #expect(greedy == [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2], "\(greedy)")
    }

    /// Session 1 (weight 3) and session 2 (weight 1), steps of cost 30: session 1 runs first and
    /// completes at 10 without resubmitting; session 2 then runs at once (session 1's next tag, 10,
    /// is after session 2's pending 0: not owed), completes at `secondDoneAt` and resubmits (tag 30).
    func oneTurnEach(secondDoneAt: UInt64) throws -> S {
        var s = scheduler(wait: 5)
        s.register(session: 1, weight: 3)
        s.register(session: 2, weight: 1)
        _ = try s.submit(session: 1, kind: .solo, cost: 30, now: 0)
        _ = try s.submit(session: 2, kind: .solo, cost: 30, now: 0)
        let first = s.next(now: 0)
        guard case .run(let a) = first, a.map(\.session) == [1] else { throw Failure("session 1 first: \(first)") }
        s.completed(a, now: 10)
        let second = s.next(now: 10)
        guard case .run(let b) = second, b.map(\.session) == [2] else { throw Failure("no wait for session 1: \(second)") }
        s.completed(b, now: secondDoneAt)
        _ = try s.submit(session: 2, kind: .solo, cost: 30, now: secondDoneAt)
        return s
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Anticipation waits only for a session owed a turn before the head, and never past
    /// `batchWait` after that session's step completed.
    @Test func anticipationWaitsOnlyForOwedSessionsAndOnlyUntilTheDeadline() throws {
        var s = try oneTurnEach(secondDoneAt: 12)
        // Session 1 (its next tag 10) is owed before session 2's step (30): wait until 10 + 5.
        #expect(s.next(now: 12) == .wait(until: 15))
        // It does not come: session 2 runs at the deadline.
        guard case .run(let c) = s.next(now: 15) else { Issue.record("session 2 at the deadline"); return }
        #expect(c.map(\.session) == [2])
    }

    /// A session whose clip just ended is anticipated until its next clip registers (within
    /// `batchWait`), with the finish tag it left; one that does not come back is not waited for again.
    @Test func aSessionBetweenClipsIsAnticipatedToo() throws {
        var s = try oneTurnEach(secondDoneAt: 20)
        // Session 1's clip ends at 20 (its finish tag 10 is behind session 2's 30): wait for its next clip.
        let left = s.unregister(session: 1, now: 20)
        let tag = try #require(left)
        #expect(s.next(now: 21) == .wait(until: 25))
        s.register(session: 1, weight: 3, finishTag: tag)
        _ = try s.submit(session: 1, kind: .solo, cost: 30, now: 22)
        guard case .run(let c) = s.next(now: 22) else { Issue.record("expected a run"); return }
        #expect(c.map(\.session) == [1], "the next clip's first step takes the turn it was owed")
        s.completed(c, now: 32)
        s.unregister(session: 1, now: 32)
        #expect(s.next(now: 33) == .wait(until: 37))
        guard case .run(let d) = s.next(now: 37) else { Issue.record("session 2 at the deadline"); return }
        #expect(d.map(\.session) == [2])
        s.completed(d, now: 40)
        _ = try s.submit(session: 2, kind: .solo, cost: 30, now: 40)
        guard case .run(let e) = s.next(now: 40), e.map(\.session) == [2] else { Issue.record("no more waiting for a session gone"); return }
    }

    @Test func compatibleStepsShareOneCallUpToMaxBatch() throws {
        var s = scheduler(maxBatch: 2)
        for k in 1...3 as ClosedRange<UInt64> { s.register(session: k) }
        s.register(session: 9)
        for k in 1...3 as ClosedRange<UInt64> { _ = try s.submit(session: k, kind: .denoise(Self.key8), cost: 1024, now: 0) }
        _ = try s.submit(session: 9, kind: .denoise(Self.key16), cost: 32768, now: 0)
        // Sessions 1 and 2 fill the call; 3 would exceed it; 9's shape differs.
        guard case .run(let first) = s.next(now: 0) else { Issue.record("expected a batch"); return }
        #expect(first.map(\.session) == [1, 2])
        guard case .run(let second) = s.next(now: 0) else { Issue.record("expected a batch"); return }
        #expect(second.map(\.session) == [3], "session 3's start tag (0) precedes session 9's (0) by ticket")
        guard case .run(let third) = s.next(now: 0) else { Issue.record("expected a batch"); return }
        #expect(third.map(\.session) == [9])
        let decision1 = s.next(now: 0)
        #expect(decision1 == .idle)
    }

    @Test func aBatchWaitsForSessionsBetweenStepsButNotPastTheDeadline() throws {
        var s = scheduler(maxBatch: 8, wait: 5)
        s.register(session: 1)
        s.register(session: 2)
        // Both ran a step together; session 1 is back first, session 2 is still between steps.
        _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 1024, now: 0)
        _ = try s.submit(session: 2, kind: .denoise(Self.key8), cost: 1024, now: 0)
        guard case .run(let both) = s.next(now: 0) else { Issue.record("expected a batch"); return }
        #expect(both.map(\.session) == [1, 2])
        s.completed(both)
        _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 1024, now: 100)
        let decision2 = s.next(now: 100)
        #expect(decision2 == .wait(until: 105), "session 2 will submit a step of the same shape")
        let decision3 = s.next(now: 104)
        #expect(decision3 == .wait(until: 105))
        _ = try s.submit(session: 2, kind: .denoise(Self.key8), cost: 1024, now: 103)
        guard case .run(let again) = s.next(now: 103) else { Issue.record("expected the batch once all came"); return }
        #expect(again.map(\.session) == [1, 2])
        s.completed(again)
        // Session 2 ends its clip: nobody is expected, so session 1 runs at once.
        s.unregister(session: 2)
        _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 1024, now: 200)
        guard case .run(let alone) = s.next(now: 200) else { Issue.record("expected no wait"); return }
        #expect(alone.map(\.session) == [1])
        s.completed(alone)
        // A newcomer waits for session 1, which is between steps, then goes alone at the deadline.
        s.register(session: 3)
        _ = try s.submit(session: 3, kind: .denoise(Self.key8), cost: 1024, now: 300)
        let decision4 = s.next(now: 300)
        #expect(decision4 == .wait(until: 305))
        guard case .run(let b3) = s.next(now: 305) else { Issue.record("expected a run at the deadline"); return }
        #expect(b3.map(\.session) == [3])
        s.completed(b3)
        _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 1024, now: 400)
        let decision5 = s.next(now: 400)
        #expect(decision5 == .wait(until: 405), "session 3 is between steps now")
        guard case .run(let late) = s.next(now: 405) else { Issue.record("expected a run at the deadline"); return }
        #expect(late.map(\.session) == [1])
    }

    @Test func aLongStepLetsDueStepsInAtItsPreemptionPoints() throws {
        var s = scheduler(maxBatch: 8)
        s.register(session: 1)  // light: steps of 1000
        s.register(session: 2)  // heavy: one step of 8000
        _ = try s.submit(session: 2, kind: .denoise(Self.key16), cost: 8000, now: 0)
        guard case .run(let heavy) = s.next(now: 0) else { Issue.record("expected the heavy step"); return }
        _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 1000, now: 1)
        // The light step's start tag is 0 (virtual time when it came): due at the first point past it.
        var ranAt: [Int] = []
        for point in 1..<8 {
            let done = Double(point) / 8
            while true {
                let due = s.preempting(heavy, done: done)
                if due.isEmpty { break }
                #expect(due.map(\.session) == [1])
                ranAt.append(point)
                s.completed(due)
                _ = try s.submit(session: 1, kind: .denoise(Self.key8), cost: 1000, now: UInt64(point))
            }
        }
        // Point p has reached 1000·p of the heavy step; the light session's tags are 0, 1000, 2000, …
        // and each is resubmitted at the virtual time reached: one light step per point.
        #expect(ranAt == [1, 2, 3, 4, 5, 6, 7])
        s.completed(heavy)
        guard case .run(let next) = s.next(now: 9) else { Issue.record("expected a run"); return }
        #expect(next.map(\.session) == [1])
    }

    @Test func withdrawnAndUnregisteredStepsNeverRun() throws {
        var s = scheduler()
        s.register(session: 1)
        s.register(session: 2)
        let t1 = try s.submit(session: 1, kind: .solo, cost: 10, now: 0)
        _ = try s.submit(session: 2, kind: .solo, cost: 10, now: 0)
        let first = s.withdraw(ticket: t1), second = s.withdraw(ticket: t1)
        #expect(first)
        #expect(!second, "a ticket is withdrawn once")
        s.unregister(session: 2)
        let decision6 = s.next(now: 0)
        #expect(decision6 == .idle)
        #expect(s.pendingCount == 0)
    }

    @Test func boundsAreEnforced() throws {
        var s = scheduler(maxPending: 2)
        for k in 1...3 as ClosedRange<UInt64> { s.register(session: k) }
        _ = try s.submit(session: 1, kind: .solo, cost: 1, now: 0)
        func attempt(_ session: UInt64) -> S.SchedulerError? {
            do { _ = try s.submit(session: session, kind: .solo, cost: 1, now: 0); return nil } catch { return error }
        }
        #expect(attempt(1) == .alreadyPending(1))
        #expect(attempt(2) == nil)
        #expect(attempt(3) == .queueFull(limit: 2))
        #expect(attempt(7) == .unknownSession(7))
    }

    @Test func aSessionsHistoryCountsAcrossClips() throws {
        var s = scheduler()
        s.register(session: 1)
        s.register(session: 2)
        _ = try s.submit(session: 1, kind: .solo, cost: 500, now: 0)
        guard case .run(let a) = s.next(now: 0) else { Issue.record("expected a run"); return }
        s.completed(a)
        // Session 1's clip ends and a new one starts with the finish tag it left.
        let tag = s.unregister(session: 1)
        #expect(tag == 500)
        s.register(session: 1, finishTag: tag ?? 0)
        _ = try s.submit(session: 1, kind: .solo, cost: 10, now: 1)
        _ = try s.submit(session: 2, kind: .solo, cost: 10, now: 1)
        guard case .run(let b) = s.next(now: 1) else { Issue.record("expected a run"); return }
        #expect(b.map(\.session) == [2], "session 2 (tag 0) before session 1 (tag 500)")
    }

    @Test func theSameArrivalsGiveTheSameSchedule() throws {
        func trace() throws -> [[UInt64]] {
            var s = scheduler(maxBatch: 3, wait: 0)
            for k in 1...5 as ClosedRange<UInt64> { s.register(session: k, weight: k % 2 + 1) }
            return try run(&s, costs: [1: 64, 2: 128, 3: 64, 4: 4096, 5: 64],
                           kind: { $0 == 4 ? .denoise(Self.key16) : .denoise(Self.key8) }, rounds: 40)
        }
        let a = try trace()
        #expect(a == (try trace()))
        #expect(a.contains { $0.count == 3 }, "compatible sessions were batched: \(a)")
        #expect(a.filter { $0 == [4] }.count >= 1, "the costly session still progressed")
    }
}
