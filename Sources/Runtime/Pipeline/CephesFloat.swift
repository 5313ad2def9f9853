/// fp32 log and sincos from the Cephes library, in the form of `avx_mathfun.h` (J. Pommier),
/// which PyTorch's AVX2 normal kernel uses. `fma` marks each multiply that the torch build
/// contracts into the following add; where it does, the result differs from separate rounding,
/// and matching torch's noise bit for bit depends on it.
enum CephesFloat {
    @inline(__always)
    private static func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { c.addingProduct(a, b) }

    /// Natural log for x in (0, 1] (the Box–Muller radius); denormals are clamped to the smallest
    /// normal as the vector code does.
    static func log(_ input: Float) -> Float {
        let minNormal = Float(bitPattern: 0x0080_0000)
        var x = Swift.max(input, minNormal)
        let bits = x.bitPattern
        // Exponent e and mantissa x in [0.5, 1).
        var e = Float(Int32(bitPattern: bits >> 23) - 0x7F) + 1
        x = Float(bitPattern: (bits & ~UInt32(0x7F80_0000)) | Float(0.5).bitPattern)
        // Below √½ use 2x − 1 with e − 1, keeping the polynomial's argument in [√½ − 1, √2 − 1).
        let below = x < 0.707106781186547524
        let tmp: Float = below ? x : 0
        x -= 1
        if below { e -= 1 }
        x += tmp

        let z = x * x
        var y: Float = 7.0376836292e-2
        y = fma(y, x, -1.1514610310e-1)
        y = fma(y, x, 1.1676998740e-1)
        y = fma(y, x, -1.2420140846e-1)
        y = fma(y, x, 1.4249322787e-1)
        y = fma(y, x, -1.6668057665e-1)
        y = fma(y, x, 2.0000714765e-1)
        y = fma(y, x, -2.4999993993e-1)
        y = fma(y, x, 3.3333331174e-1)
        y = y * x
        y = fma(y, z, e * -2.12194440e-4)
        y = fma(z, -0.5, y)
        x = x + y
        return fma(e, 0.693359375, x)
    }

    /// (sin θ, cos θ) for θ ≥ 0 (the Box–Muller angle 2πu).
    static func sincos(_ theta: Float) -> (sin: Float, cos: Float) {
        var signSin = theta.bitPattern & 0x8000_0000
        var x = Float(bitPattern: theta.bitPattern & 0x7FFF_FFFF)
        // Octant j (rounded up to even) and the extended-precision reduction x − j·π/4.
        var j = Int32(x * 1.27323954473516)
        j = (j + 1) & ~1
        let y = Float(j)
        let swapSign = UInt32(bitPattern: j & 4) << 29
        let sinPolynomialForSin = (j & 2) == 0
        signSin ^= swapSign
        let signCos = UInt32(bitPattern: ~(j - 2) & 4) << 29
        x = fma(y, -0.78515625, x)
        x = fma(y, -2.4187564849853515625e-4, x)
        x = fma(y, -3.77489497744594108e-8, x)

        let z = x * x
        var c = fma(2.443315711809948e-5, z, -1.388731625493765e-3)
        c = fma(c, z, 4.166664568298827e-2)
        c = c * z
        c = fma(c, z, -(z * 0.5))
        c = c + 1
        var s = fma(-1.9515295891e-4, z, 8.3321608736e-3)
        s = fma(s, z, -1.6666654611e-1)
        s = s * z
        s = fma(s, x, x)

        let sinV = sinPolynomialForSin ? s : c
        let cosV = sinPolynomialForSin ? c : s
        return (Float(bitPattern: sinV.bitPattern ^ signSin), Float(bitPattern: cosV.bitPattern ^ signCos))
    }
}
