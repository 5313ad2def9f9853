import CUV

/// Shuts the write side of `stream` (uv_shutdown) and runs `done` on the loop once it is shut.
/// Returns false, without calling `done`, when libuv refuses at once; the caller then handles
/// the failure in its own flow. The request keeps `done` (and what it captures) alive until then.
func shutDownWriteSide(_ stream: UnsafeMutablePointer<uv_stream_t>, then done: @escaping () -> Void) -> Bool {
    let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
    req.initialize(to: uv_shutdown_t())
    let context = Unmanaged.passRetained(ShutdownContext(done))
    req.pointee.data = context.toOpaque()
    let status = uv_shutdown(req, stream) { req, _ in
        guard let req else { return }
        let context = req.pointee.data.map { Unmanaged<ShutdownContext>.fromOpaque($0).takeRetainedValue() }
        req.deallocate()
        context?.done()
    }
    if status < 0 {
        context.release()
        req.deallocate()
        return false
    }
    return true
}

private final class ShutdownContext {
    let done: () -> Void
    init(_ done: @escaping () -> Void) { self.done = done }
}
