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
