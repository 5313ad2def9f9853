import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Seconds since the command started, on CLOCK_MONOTONIC: a wall-clock step (NTP) in the middle of
/// a benchmark would otherwise show up as a gap between frames. The summary's "longest wait" and
/// `--timings` both read this clock, so the two agree.
struct MonotonicClock: Sendable {
    /// CLOCK_MONOTONIC at the start, in seconds; the same clock in every process on the machine,
    /// so the start written into a timings file lines up sessions of different clients.
    let start: Double

    init() { start = Self.now() }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func elapsed() -> Double { Self.now() - start }
}

/// `--timings FILE`: one CSV line per received frame, `frame_number,clip_index,seconds`, for
/// tools/bench/stream_stats.py. Lines go to FILE.tmp as they arrive (a script may watch the stream
/// progress there) and FILE appears only by the rename at exit, so a reader never sees a file that
/// is still growing or half written. The first line, `# start_monotonic_s=…`, is the clock's start,
/// which stream_stats.py needs to put several sessions on one time axis.
final class TimingsFile: @unchecked Sendable {
    static let header = "frame_number,clip_index,seconds"

    let path: String
    private let temporary: String
    private let lock = NSLock()
    private var fd: Int32

    init(path: String, clock: MonotonicClock) throws {
        self.path = path
        temporary = path + ".tmp"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Stream.OutputError(message: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        try append("# start_monotonic_s=\(String(format: "%.6f", clock.start))\n\(Self.header)\n")
        Self.register(self)
    }

    func record(_ frame: UInt64, clip: UInt32, at seconds: Double) throws {
        try append(String(format: "%llu,%u,%.6f\n", frame, clip, seconds))
    }

    /// Closes FILE.tmp and renames it to FILE; later calls do nothing.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        rename(temporary, path)
    }

    private func append(_ line: String) throws {
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { return }
        let bytes = Array(line.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Stream.OutputError(message: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    // Error paths leave through exit() (`fail`, a second Ctrl-C) from whatever thread they are on;
    // an atexit handler renames the file on every one of them, so a failed run still leaves the
    // frames it received.
    private nonisolated(unsafe) static var active: TimingsFile?
    private static let activeLock = NSLock()

    private static func register(_ file: TimingsFile) {
        activeLock.lock()
        defer { activeLock.unlock() }
        if active == nil { atexit { TimingsFile.finishActive() } }
        active = file
    }

    private static func finishActive() {
        activeLock.lock()
        let file = active
        activeLock.unlock()
        file?.finish()
    }
}
