/// Vectorised transcendental functions for the element-wise hot loops (softmax, SiLU, GELU).
///
/// libm's scalar `expf`/`erff` were a quarter of a U-Net forward; these SIMD versions use
/// Cephes-style range reduction and minimax polynomials (exp: ≤ 3e-7 relative; erf: Abramowitz &
/// Stegun 7.1.26, ≤ 5e-7 absolute in fp32 — see OpsTests), far inside the 1e-4 parity budget.
typealias FloatV = SIMD8<Float>
typealias IntV = SIMD8<Int32>

@inline(__always)
func vexp(_ xIn: FloatV) -> FloatV {
    // Clamp with mask selects: the generic SIMD min/max and float→int conversions are not
    // lowered to vector instructions, so rounding uses the 1.5·2^23 trick instead.
    let lo = FloatV(repeating: -87.33654), hi = FloatV(repeating: 88.37626)
    var x = xIn.replacing(with: lo, where: xIn .< lo)
    x = x.replacing(with: hi, where: x .> hi)
    let magic = FloatV(repeating: 12582912)
    let t = x * 1.44269504088896341 + magic
    let n = t - magic
    var r = x - n * 0.693359375
    r = r + n * 2.12194440e-4
    var p = FloatV(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let y = p * (r * r) + r + 1
    let ni = unsafeBitCast(t, to: IntV.self) &- unsafeBitCast(magic, to: IntV.self)
    let bits = (ni &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: FloatV.self)
}

@inline(__always)
func vsilu(_ x: FloatV) -> FloatV { x / (1 + vexp(-x)) }

/// erf via A&S 7.1.26 (1.5e-7 in exact arithmetic, ≤ 5e-7 after fp32 rounding).
@inline(__always)
func verf(_ x: FloatV) -> FloatV {
    let ax = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.3275911 * ax)
    var p = FloatV(repeating: 1.061405429)
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    let e = vexp(-(ax * ax))
    let y = FloatV(repeating: 1) - p * t * e
    return y.replacing(with: -y, where: x .< 0)
}

@inline(__always)
func vgelu(_ x: FloatV) -> FloatV { 0.5 * x * (1 + verf(x * 0.70710678118654752)) }

/// Applies `f` to `count` floats in place, eight at a time (scalar tail through the same function).
@inline(__always)
func mapInPlace(_ p: UnsafeMutablePointer<Float>, count: Int, _ f: (FloatV) -> FloatV) {
    var i = 0
    let raw = UnsafeMutableRawPointer(p)
    while i + 8 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: FloatV.self)
        raw.storeBytes(of: f(v), toByteOffset: i * 4, as: FloatV.self)
        i += 8
    }
    if i < count {
        var tail = FloatV(repeating: 0)
        for j in 0..<(count - i) { tail[j] = p[i + j] }
        let r = f(tail)
        for j in 0..<(count - i) { p[i + j] = r[j] }
    }
}

/// Unnormalised row softmax in place: `row[j] = exp(row[j] - max)`; returns the row sum so the
/// caller can normalise the (much smaller) attention output instead of every score.
@inline(__always)
func expShiftedRow(_ row: UnsafeMutablePointer<Float>, count n: Int) -> Float {
    let raw = UnsafeMutableRawPointer(row)
    var mv = FloatV(repeating: -Float.infinity)
    var i = 0
    while i + 8 <= n {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: FloatV.self)
        mv = mv.replacing(with: v, where: v .> mv)
        i += 8
    }
    var m = -Float.infinity
    for j in 0..<8 { m = Swift.max(m, mv[j]) }
    while i < n { m = Swift.max(m, row[i]); i += 1 }
    let shift = FloatV(repeating: m)
    var sumV = FloatV(repeating: 0)
    i = 0
    while i + 8 <= n {
        let e = vexp(raw.loadUnaligned(fromByteOffset: i * 4, as: FloatV.self) - shift)
        raw.storeBytes(of: e, toByteOffset: i * 4, as: FloatV.self)
        sumV += e
        i += 8
    }
    var sum: Float = 0
    for j in 0..<8 { sum += sumV[j] }
    if i < n {
        var tail = FloatV(repeating: -Float.infinity)
        for j in 0..<(n - i) { tail[j] = row[i + j] }
        let e = vexp(tail - shift)
        for j in 0..<(n - i) { row[i + j] = e[j]; sum += e[j] }
    }
    return sum
}

/// Row softmax in place: exp(x - max) / sum, vectorised.
@inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, count n: Int) {
    let inv = FloatV(repeating: 1 / expShiftedRow(row, count: n))
    mapInPlace(row, count: n) { $0 * inv }
}
