import VidrdRuntime

/// Procedural videos built inside the tests: a square on a plain background, with per-pixel
/// coverage (anti-aliased) so that uniform motion gives uniform frame steps.
struct SyntheticVideo {
    var height = 24
    var width = 24
    var side = 6.0
    var background: SIMD3<Float> = [0.1, 0.2, 0.8]
    var object: SIMD3<Float> = [0.9, 0.1, 0.1]
    /// Positions wrap around the frame (a torus), so a long motion never leaves it.
    var wrap = true

    /// Frames `[n, H, W, 3]` with the square's top-left corner at `position(t)` for t = first..<first+n.
    func render(_ times: Range<Int>, position: (Int) -> (x: Double, y: Double)) -> Tensor {
        var out = [Float]()
        out.reserveCapacity(times.count * height * width * 3)
        for t in times {
            let (x0, y0) = position(t)
            for y in 0..<height {
                for x in 0..<width {
                    let c = Float(coverage(Double(x), x0, width) * coverage(Double(y), y0, height))
                    let p = background * (1 - c) + object * c
                    out.append(p.x); out.append(p.y); out.append(p.z)
                }
            }
        }
        return Tensor(shape: [times.count, height, width, 3], scalars: out)
    }

    /// Overlap of pixel [p, p+1) with the interval [start, start+side), on the torus when wrapping.
    func coverage(_ p: Double, _ start: Double, _ extent: Int) -> Double {
        func overlap(_ s: Double) -> Double { max(0, min(p + 1, s + side) - max(p, s)) }
        guard wrap else { return overlap(start) }
        let e = Double(extent)
        let s = start - (start / e).rounded(.down) * e
        return min(1, overlap(s) + overlap(s - e))
    }

    /// One long motion cut into clips of the given frame counts.
    func continuing(counts: [Int], position: (Int) -> (x: Double, y: Double)) -> [Tensor] {
        var t = 0
        return counts.map { n in
            defer { t += n }
            return render(t..<(t + n), position: position)
        }
    }
}

/// Clip k+1 = clip k reversed, clip k+2 = clip k: what the default chain converges to.
func pingPong(_ clip: Tensor, clips k: Int) -> [Tensor] {
    let reversed = reverse(clip)
    return (0..<k).map { $0 % 2 == 0 ? clip : reversed }
}

func reverse(_ clip: Tensor) -> Tensor {
    let n = clip.shape[0], per = clip.count / max(n, 1)
    var out = [Float]()
    out.reserveCapacity(clip.count)
    for i in (0..<n).reversed() { out.append(contentsOf: clip.scalars[(i * per)..<((i + 1) * per)]) }
    return Tensor(shape: clip.shape, scalars: out)
}

/// Uniform random frames from a small deterministic generator (SplitMix64).
struct Noise {
    var state: UInt64
    mutating func next() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
    }
    mutating func clip(frames n: Int, height: Int = 24, width: Int = 24) -> Tensor {
        Tensor(shape: [n, height, width, 3], scalars: (0..<(n * height * width * 3)).map { _ in next() })
    }
}
