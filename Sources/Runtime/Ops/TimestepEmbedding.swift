#if canImport(Glibc)
import Glibc
#endif

/// Sinusoidal timestep features as diffusers' `get_timestep_embedding` (max period 10000).
public func sinusoidalTimestepEmbedding(_ timesteps: [Float], dimension: Int, flipSinToCos: Bool,
                                        downscaleFreqShift: Float, scale: Float = 1) -> Tensor {
    let half = dimension / 2
    var out = [Float](repeating: 0, count: timesteps.count * dimension)
    // Frequencies in fp32 as PyTorch computes them, so arguments match to the last bit.
    let freqs: [Float] = (0..<half).map { i in
        expf(-logf(10000) * Float(i) / (Float(half) - downscaleFreqShift))
    }
    for (n, t) in timesteps.enumerated() {
        for i in 0..<half {
            let arg = scale * (t * freqs[i])
            let (s, c) = (sinf(arg), cosf(arg))
            if flipSinToCos {
                out[n * dimension + i] = c
                out[n * dimension + half + i] = s
            } else {
                out[n * dimension + i] = s
                out[n * dimension + half + i] = c
            }
        }
    }
    return Tensor(shape: [timesteps.count, dimension], scalars: out)
}
