/// YUV4MPEG2 (the `.y4m` stream ffmpeg, ffplay and mpv read without flags): a one-line header
/// naming size, rate, interlacing, aspect and colour space, then `FRAME\n` + planes per frame.
///
/// Frames are written 4:4:4 (`C444`) so no chroma is thrown away at 64×64, converted with the
/// BT.601 matrix at full range (what JPEG and WebP's decoder output use), and the header says so
/// with ffmpeg's `XCOLORRANGE=FULL` extension; readers that do not know it ignore it.
public enum Y4M {
    /// `YUV4MPEG2 W64 H64 F8:1 Ip A1:1 C444 XCOLORRANGE=FULL\n`.
    public static func header(width: Int, height: Int, fps: Double) -> [UInt8] {
        let (num, den) = rate(fps)
        return Array("YUV4MPEG2 W\(width) H\(height) F\(num):\(den) Ip A1:1 C444 XCOLORRANGE=FULL\n".utf8)
    }

    /// `fps` as a reduced fraction with a denominator ≤ 1001 (so 7.5 → 15:2, 29.97 → 2997:100).
    /// A non-positive or non-finite rate (never sent by a conforming server) falls back to 8:1,
    /// the daemon's default, rather than writing a header no reader accepts.
    public static func rate(_ fps: Double) -> (UInt64, UInt64) {
        guard fps.isFinite, fps > 0, fps < 1e6 else { return (8, 1) }
        for den: UInt64 in [1, 2, 4, 5, 8, 10, 100, 1000, 1001] {
            let num = (fps * Double(den)).rounded()
            if abs(num / Double(den) - fps) < 1e-9 * max(fps, 1) { return reduce(UInt64(num), den) }
        }
        return reduce(UInt64((fps * 1000).rounded()), 1000)
    }

    private static func reduce(_ a: UInt64, _ b: UInt64) -> (UInt64, UInt64) {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return x == 0 ? (8, 1) : (a / x, b / x)
    }

    /// One frame: `FRAME\n`, then the Y, Cb and Cr planes, each width×height bytes.
    public static func frame(_ image: RGBImage) -> [UInt8] {
        let n = image.width * image.height
        var out = [UInt8](repeating: 0, count: 6 + 3 * n)
        out.replaceSubrange(0..<6, with: Array("FRAME\n".utf8))
        image.pixels.withUnsafeBufferPointer { rgb in
            for i in 0..<min(n, rgb.count / 3) {
                let (y, cb, cr) = ycbcr(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2])
                out[6 + i] = y
                out[6 + n + i] = cb
                out[6 + 2 * n + i] = cr
            }
        }
        return out
    }

    /// BT.601 full range (JFIF): Y = 0.299 R + 0.587 G + 0.114 B, Cb/Cr centred on 128.
    public static func ycbcr(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
        let (r, g, b) = (Double(r), Double(g), Double(b))
        let y = 0.299 * r + 0.587 * g + 0.114 * b
        let cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
        let cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
        return (clamp(y), clamp(cb), clamp(cr))
    }

    private static func clamp(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }
}
