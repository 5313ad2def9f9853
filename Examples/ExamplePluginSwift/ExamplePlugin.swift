// An example vidrd plugin written in Swift through the C ABI (vidrd_plugin.h), built by SwiftPM as
// the dynamic library product VidrdExamplePluginSwift. Strategy "swift_stride" decides emission:
// it emits every `stride`-th frame of each clip (frames 0, stride, 2·stride, …).
import CVidrdPlugin
#if canImport(Glibc)
import Glibc
#endif

private final class StrideState {
    let stride: Int32
    init(stride: Int32) { self.stride = stride }
}

private func cstr(_ s: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(s)!) }

private func write(_ message: String, _ err: UnsafeMutablePointer<CChar>?, _ size: Int) {
    guard let err, size > 0 else { return }
    _ = message.withCString { strncpy(err, $0, size - 1) }
    err[size - 1] = 0
}

private let strideCreate: @convention(c) (UnsafePointer<vidrd_param_value>?, UnsafeMutablePointer<CChar>?, Int) -> UnsafeMutableRawPointer? = { values, err, size in
    guard let v = values?.pointee, v.kind == Int32(VIDRD_PARAM_INT.rawValue), v.int_value >= 1, v.int_value <= 1024 else {
        write("stride must be an int in 1...1024", err, size)
        return nil
    }
    return Unmanaged.passRetained(StrideState(stride: Int32(v.int_value))).toOpaque()
}

private let strideDestroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { state in
    if let state { Unmanaged<StrideState>.fromOpaque(state).release() }
}

private let strideEmitted: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<vidrd_clip_info>?, UnsafePointer<Float>?,
                                           UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?,
                                           UnsafeMutablePointer<CChar>?, Int) -> Int32 = { state, clip, _, frames, count, used, err, size in
    guard let state, let clip, let frames, let count, let used else { write("missing argument", err, size); return 1 }
    let s = Unmanaged<StrideState>.fromOpaque(state).takeUnretainedValue()
    var n: Int32 = 0
    var f: Int32 = 0
    while f < clip.pointee.frames { frames[Int(n)] = f; n += 1; f += s.stride }
    count.pointee = n
    used.pointee = 1
    return 0
}

private nonisolated(unsafe) let params: UnsafeMutablePointer<vidrd_param_desc> = {
    let p = UnsafeMutablePointer<vidrd_param_desc>.allocate(capacity: 1)
    var d = vidrd_param_desc()
    d.name = cstr("stride")
    d.kind = Int32(VIDRD_PARAM_INT.rawValue)
    d.default_value.kind = Int32(VIDRD_PARAM_INT.rawValue)
    d.default_value.int_value = 2
    d.help = cstr("emit every stride-th frame")
    d.has_minimum = 1
    d.minimum = 1
    d.has_maximum = 1
    d.maximum = 1024
    p.initialize(to: d)
    return p
}()

private nonisolated(unsafe) let plugin: UnsafeMutablePointer<vidrd_plugin> = {
    let s = UnsafeMutablePointer<vidrd_strategy_desc>.allocate(capacity: 1)
    var d = vidrd_strategy_desc()
    d.name = cstr("swift_stride")
    d.summary = cstr("example Swift plugin: emits every stride-th frame of each clip")
    d.params = UnsafePointer(params)
    d.param_count = 1
    d.decides_emission = 1
    d.create = strideCreate
    d.destroy = strideDestroy
    d.emitted_frames = strideEmitted
    s.initialize(to: d)
    let p = UnsafeMutablePointer<vidrd_plugin>.allocate(capacity: 1)
    p.initialize(to: vidrd_plugin(abi_version: UInt32(VIDRD_PLUGIN_ABI_VERSION), strategy_count: 1, strategies: UnsafePointer(s)))
    return p
}()

@_cdecl("vidrd_plugin_entry")
public func vidrdPluginEntry() -> UnsafePointer<vidrd_plugin> { UnsafePointer(plugin) }
