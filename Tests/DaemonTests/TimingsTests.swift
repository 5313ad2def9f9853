import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension DaemonSuite {
    /// `vidrd-client stream --timings FILE`, which tools/bench/stream_bench.sh and stream_stats.py
    /// build their numbers on.
    @Suite("vidrd-client --timings", .enabled(if: ClientBinary.path != nil, "vidrd-client is not built next to the tests"))
    struct TimingsTests {
        static func monotonicNow() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }

        /// The file's rows after its `# start_monotonic_s=` line and header, and that start.
        typealias Row = (frame: Int, clip: Int, seconds: Double)

        static func read(_ path: String) throws -> (start: Double, rows: [Row]) {
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.last == "", "the file ends with a newline")
            try #require(lines.count >= 3)
            let prefix = "# start_monotonic_s="
            try #require(lines[0].hasPrefix(prefix), "first line: \(lines[0])")
            let start = try #require(Double(lines[0].dropFirst(prefix.count)))
            #expect(lines[1] == "frame_number,clip_index,seconds")
            let rows = try lines[2..<(lines.count - 1)].map { line -> Row in
                let fields = line.split(separator: ",", omittingEmptySubsequences: false)
                try #require(fields.count == 3, "row \(line)")
                return (frame: try #require(Int(fields[0])), clip: try #require(Int(fields[1])), seconds: try #require(Double(fields[2])))
            }
            return (start, rows)
        }

        @Test("one row per received frame, numbered from 0, on the summary's clock; written on success, Ctrl-C and error exits")
        func timingsFile() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-timings-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let common = ["stream", "--server", "127.0.0.1:\(d.port)", "--prompt", "a red ball", "--steps", "2", "--guidance", "1",
                          "--width", "8", "--height", "8", "--frames", "4", "--emission", "all", "--prompt-frames", "2", "--seed", "3"]

            let file = dir.appendingPathComponent("t.csv").path
            let before = Self.monotonicNow()
            var (status, _, stderr) = try ClientBinary.run(common + ["--clips", "3", "--timings", file])
            let after = Self.monotonicNow()
            #expect(status == 0, "\(stderr)")
            #expect(!FileManager.default.fileExists(atPath: file + ".tmp"), "renamed at exit")
            let (start, rows) = try Self.read(file)
            #expect(start >= before && start <= after, "the start is CLOCK_MONOTONIC, which the test process reads too")
            #expect(rows.map(\.frame) == Array(0..<12), "3 clips of 4 frames, every frame once, in order")
            #expect(rows.map(\.clip) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
            #expect(rows.first!.seconds > 0)
            #expect(zip(rows, rows.dropFirst()).allSatisfy { $0.seconds <= $1.seconds }, "seconds never decrease")
            #expect(start + rows.last!.seconds <= after)
            // The summary on stderr reads the same clock: its first frame and longest wait are the file's.
            let gaps = zip(rows, rows.dropFirst()).map { $1.seconds - $0.seconds }
            // (The file rounds to microseconds, which can move a value across the summary's rounding.)
            let summaries = [-1e-6, 0, 1e-6].flatMap { e in
                [-2e-6, 0, 2e-6].map { g in
                    String(format: "first frame after %.2f s, longest wait between frames %.2f s", rows[0].seconds + e, gaps.max()! + g)
                }
            }
            #expect(summaries.contains { stderr.contains($0) }, "\(stderr) should contain \(summaries[4])")

            // Ctrl-C after the first frame has been recorded: the rows received until then, still in order.
            let interrupted = dir.appendingPathComponent("interrupted.csv").path
            (status, _, stderr) = try ClientBinary.run(common + ["--timings", interrupted], interruptWhen: {
                ((try? String(contentsOfFile: interrupted + ".tmp", encoding: .utf8)) ?? "").split(separator: "\n").count >= 3
            })
            #expect(status == 0, "\(stderr)")
            let partial = try Self.read(interrupted).rows
            #expect(!partial.isEmpty && partial.map(\.frame) == Array(0..<partial.count))
            #expect(stderr.contains("clips, \(partial.count) frames in"), "as many rows as the summary counts frames: \(stderr)")

            // A failed run (nothing listening) exits through `fail`, and still leaves the file, empty.
            let refused = dir.appendingPathComponent("refused.csv").path
            (status, _, _) = try ClientBinary.run(["stream", "--server", "127.0.0.1:1", "--prompt", "x", "--timings", refused])
            #expect(status == 69)
            #expect(!FileManager.default.fileExists(atPath: refused + ".tmp"))
            #expect(try Self.read(refused).rows.isEmpty)

            (status, _, stderr) = try ClientBinary.run(common + ["--timings", dir.appendingPathComponent("no/such/dir.csv").path])
            #expect(status == 73, "cannot create the file: \(stderr)")
        }
    }
}
