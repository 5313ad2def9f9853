import Foundation
import VidrdProtocol

/// How a session survives the loss of its server: a drain (`UNAVAILABLE`) or a lost connection
/// makes the client reconnect to the same address (behind a load balancer, usually another node)
/// and present the session's latest continuation, so the stream goes on where it stopped
/// (docs/DAEMON.md, "Resumable sessions"). The consumer sees one sequence of events without a
/// frame missing or repeated.
public struct ResumePolicy: Sendable, Hashable {
    /// Reconnections tried for one interruption before the session fails with the last error;
    /// 0 turns resuming off (the session does not ask for continuations).
    public var maxAttempts: Int
    /// Wait before the first attempt, in seconds; each further attempt doubles it up to
    /// `maxBackoff`. A server's `retry_after_ms` is honoured when it asks for longer.
    public var initialBackoff: Double
    public var maxBackoff: Double
    /// Each wait is drawn uniformly from `[wait × (1 − jitter), wait]`, so that the viewers of a
    /// drained node do not all reconnect in the same instant.
    public var jitter: Double

    public init(maxAttempts: Int = 8, initialBackoff: Double = 0.1, maxBackoff: Double = 5, jitter: Double = 0.5) {
        self.maxAttempts = max(0, maxAttempts)
        self.initialBackoff = max(0, initialBackoff)
        self.maxBackoff = max(self.initialBackoff, maxBackoff)
        self.jitter = min(max(jitter, 0), 1)
    }

    /// Never resume: an interruption ends the session with its error.
    public static let disabled = ResumePolicy(maxAttempts: 0)

    /// Seconds to wait before attempt `n` (1-based), given the server's hint.
    func delay(attempt n: Int, retryAfterMs: UInt32?, random: Double) -> Double {
        let exponential = min(maxBackoff, initialBackoff * pow(2, Double(max(n - 1, 0))))
        let jittered = exponential * (1 - jitter * random)
        return max(jittered, Double(retryAfterMs ?? 0) / 1000)
    }

    /// Interruptions a continuation can bridge: the server going away (drain, shutdown) or the
    /// connection breaking. A rejection, a failed clip or a protocol violation would only recur.
    static func isResumable(_ e: VidrdError) -> Bool {
        switch e.kind {
        case .connectionClosed, .connectionFailed: return true
        case .server: return e.code == .unavailable
        case .protocolViolation, .closedByClient: return false
        }
    }
}
