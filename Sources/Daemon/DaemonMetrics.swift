import Prometheus
import VidrdProtocol

/// The daemon's Prometheus metrics (docs/DAEMON.md, "Metrics and readiness"): a registry of
/// swift-prometheus and typed handles to what is recorded in it. No I/O and no clock: callers
/// pass durations they measured, the probe listener asks for `exposition()`.
///
/// Every handle is thread-safe (swift-prometheus keeps values in atomics), so the loop thread,
/// the clip threads and the compute threads record directly instead of routing every sample
/// through the loop. Each daemon owns its own instance: no process-wide registry (swift-metrics'
/// `MetricsSystem.bootstrap`), so several daemons in one process (the tests) never mix values.
public final class DaemonMetrics: Sendable {
    /// What a step was, for the step latency histogram's `kind` label.
    enum StepKind: String, Sendable, CaseIterable {
        case unet, decode, encode
    }

    /// Where a request was refused, for `vidrd_rejections_total`'s `stage` label.
    enum RejectionStage: String, Sendable {
        /// At accept time or in the handshake (capacity, drain, token, version).
        case connection
        /// OPEN_SESSION answered with an ERROR.
        case session
    }

    private let registry = PrometheusCollectorRegistry()

    let connectionsAccepted: Counter
    let sessionsOpened: Counter
    let sessionsResumed: Counter
    let clipsServed: Counter
    let framesServed: Counter
    let workerBusySeconds: Counter
    let connections: Gauge
    let sessions: Gauge
    let queuedBytes: Gauge
    let stepsPending: Gauge
    let draining: Gauge
    let clipSeconds: ValueHistogram
    private let stepSeconds: [StepKind: ValueHistogram]

    /// Seconds. Steps of the tiny test model take milliseconds, a ModelScope-size U-Net call
    /// several seconds on these CPUs: the buckets cover both.
    static let stepBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    /// Seconds from a clip's dispatch to its CLIP_END: 25 guided steps of the embedded model take
    /// about 2.5 s, a large model's clip minutes.
    static let clipBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

    public init() {
        let r = registry
        func name(_ base: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "vidrd", metricName: base, unitName: unit, helpText: help)
        }
        connectionsAccepted = r.makeCounter(
            descriptor: name("connections_accepted", "total", "TCP connections accepted on the protocol port, refused ones included"))
        sessionsOpened = r.makeCounter(descriptor: name("sessions_opened", "total", "Sessions opened (SESSION_OPENED sent)"))
        sessionsResumed = r.makeCounter(
            descriptor: name("sessions_resumed", "total", "Sessions opened from a continuation (included in sessions_opened)"))
        clipsServed = r.makeCounter(descriptor: name("clips_served", "total", "Clips delivered to a client: CLIP_END sent"))
        framesServed = r.makeCounter(descriptor: name("frames_served", "total", "FRAME messages queued for a client"))
        workerBusySeconds = r.makeCounter(
            descriptor: name("worker_busy_seconds", "total", "Seconds the compute threads spent running steps, summed over the threads"))
        connections = r.makeGauge(descriptor: name("connections", "", "Connections handshaking or ready (not lingering after their last frame)"))
        sessions = r.makeGauge(descriptor: name("sessions", "", "Sessions held, until a cancelled clip's worker has returned"))
        queuedBytes = r.makeGauge(descriptor: name("queued", "bytes", "Bytes queued for sending, all connections"))
        stepsPending = r.makeGauge(descriptor: name("steps_pending", "", "Steps waiting in the step scheduler (not yet running)"))
        draining = r.makeGauge(descriptor: name("draining", "", "1 while the daemon drains (SIGTERM or shutdown), else 0"))
        clipSeconds = r.makeValueHistogram(
            descriptor: name("clip", "seconds", "Seconds from a clip's dispatch to its CLIP_END"), buckets: Self.clipBuckets)
        var steps: [StepKind: ValueHistogram] = [:]
        let stepName = name("step", "seconds", "Seconds from a step's submission to its result (waiting in the scheduler included)")
        for kind in StepKind.allCases {
            steps[kind] = r.makeValueHistogram(descriptor: stepName, labels: [("kind", kind.rawValue)], buckets: Self.stepBuckets)
        }
        stepSeconds = steps
    }

    /// The gauges that mirror the server's state, set from the loop thread just before an
    /// exposition (sampling at scrape time keeps the state machine free of gauge bookkeeping).
    func sample(connections: Int, sessions: Int, queuedBytes: Int, draining: Bool) {
        self.connections.set(to: Double(connections))
        self.sessions.set(to: Double(sessions))
        self.queuedBytes.set(to: Double(max(0, queuedBytes)))
        self.draining.set(to: draining ? 1.0 : 0.0)
    }

    func recordStep(_ kind: StepKind, seconds: Double) {
        stepSeconds[kind]?.record(seconds)
    }

    func rejected(_ code: StatusCode, at stage: RejectionStage) {
        // The registry hands back the existing counter for a name and labels it has seen, so a
        // code's series exists from its first rejection on; codes never used stay absent.
        let name = MetricNameDescriptor(
            namespace: "vidrd", metricName: "rejections", unitName: "total", helpText: "Connections and sessions refused, by status code")
        registry.makeCounter(descriptor: name, labels: [("code", code.name), ("stage", stage.rawValue)]).increment()
    }

    /// The Prometheus text exposition format (version 0.0.4) of every metric.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
