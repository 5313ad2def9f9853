import Foundation
import Testing
import VidrdMedia

/// Debian's ffmpeg tools (installed by .ci/run); the Y4M test skips, saying so, without them.
enum FFmpegTools {
    static let ffprobe: String? = find("ffprobe")
    static let ffmpeg: String? = find("ffmpeg")

    static func find(_ name: String) -> String? {
        let path = ["/usr/bin/\(name)", "/usr/local/bin/\(name)"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if path == nil { print("Y4M stream test skipped: \(name) is not installed (apt-get install ffmpeg)") }
        return path
    }

    /// Runs a tool with `input` on its standard input; returns (status, stdout, stderr).
    static func run(_ tool: String, _ arguments: [String], input: Data? = nil) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input == nil ? FileHandle.nullDevice : inp
        try p.run()
        let outData = Locked2<Data>(), errData = Locked2<Data>()
        Thread { outData.set(out.fileHandleForReading.readDataToEndOfFile()) }.start()
        Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }.start()
        if let input {
            inp.fileHandleForWriting.write(input)
            try inp.fileHandleForWriting.close()
        }
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        stop(p)
        while outData.get() == nil || errData.get() == nil { Thread.sleep(forTimeInterval: 0.01) }
        return (p.terminationStatus, outData.get() ?? Data(), String(decoding: errData.get() ?? Data(), as: UTF8.self))
    }
}

extension DaemonSuite {
    @Suite(
        "vidrd-client --y4m",
        .enabled(if: ClientBinary.path != nil, "vidrd-client is not built next to the tests"),
        .enabled(if: FFmpegTools.ffprobe != nil && FFmpegTools.ffmpeg != nil, "ffprobe/ffmpeg are not installed (apt-get install ffmpeg)"))
    struct Y4MStreamTests {
        @Test("--y4m FILE and --y4m -: ffprobe reads size, rate, frame count; ffmpeg decodes the received pixels")
        func y4mDecodesWithFFmpeg() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-y4m-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            // 12 fps (not the default 8) so the header's rate visibly comes from the session; lossless
            // WebP so the received pixels are exact and the colour conversion is what is compared.
            let file = dir.appendingPathComponent("stream.y4m").path
            let common = ["stream", "--server", "127.0.0.1:\(d.port)", "--prompt", "a red ball", "--steps", "2", "--guidance", "1",
                          "--width", "16", "--height", "8", "--frames", "4", "--emission", "all", "--prompt-frames", "2", "--seed", "5",
                          "--fps", "12", "--lossless", "--clips", "3"]
            var (status, stdout, stderr) = try ClientBinary.run(common + ["--out", dir.path, "--y4m", file])
            #expect(status == 0, "\(stderr)")
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(bytes.starts(with: Data("YUV4MPEG2 W16 H8 F12:1 Ip A1:1 C444".utf8)))

            let (probeStatus, probe, probeErr) = try FFmpegTools.run(try #require(FFmpegTools.ffprobe), [
                "-v", "error", "-count_frames", "-select_streams", "v:0",
                "-show_entries", "stream=width,height,r_frame_rate,nb_read_frames,pix_fmt", "-of", "default=noprint_wrappers=1", file,
            ])
            #expect(probeStatus == 0, "\(probeErr)")
            let fields = Dictionary(String(decoding: probe, as: UTF8.self).split(separator: "\n").compactMap { line -> (String, String)? in
                let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
                return kv.count == 2 ? (kv[0], kv[1]) : nil
            }, uniquingKeysWith: { a, _ in a })
            #expect(fields["width"] == "16" && fields["height"] == "8", "\(fields)")
            #expect(fields["r_frame_rate"] == "12/1", "\(fields)")
            #expect(fields["nb_read_frames"] == "12", "3 clips × 4 frames: \(fields)")
            #expect(fields["pix_fmt"]?.hasPrefix("yuv444p") == true || fields["pix_fmt"]?.hasPrefix("yuvj444p") == true, "\(fields)")

            // The same stream through a pipe, decoded back to RGB by ffmpeg with no input flags:
            // every pixel is within rounding of the WebP frames that arrived.
            (status, stdout, stderr) = try ClientBinary.run(common + ["--y4m", "-"])
            #expect(status == 0, "\(stderr)")
            #expect(stdout.starts(with: Data("YUV4MPEG2 W16 H8 F12:1".utf8)))
            let (decStatus, rgb, decErr) = try FFmpegTools.run(
                try #require(FFmpegTools.ffmpeg), ["-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], input: stdout)
            #expect(decStatus == 0, "\(decErr)")
            var expected: [UInt8] = []
            for n in 0..<12 {
                let frame = dir.appendingPathComponent(FrameFiles.name(Int64(n)))
                expected += try WebP.decode(Array(try Data(contentsOf: frame))).pixels
            }
            #expect(rgb.count == expected.count, "12 frames of 16×8 RGB")
            let worst = zip(rgb, expected).map { abs(Int($0) - Int($1)) }.max() ?? 255
            #expect(worst <= 6, "largest per-channel difference after YCbCr → RGB: \(worst)")
        }

        @Test("--y4m - with --stdout is a usage error")
        func y4mAndStdoutExclude() throws {
            let (status, _, stderr) = try ClientBinary.run(["stream", "--prompt", "x", "--y4m", "-", "--stdout"])
            #expect(status == 64, "\(stderr)")
            #expect(stderr.contains("--y4m"))
        }
    }
}
