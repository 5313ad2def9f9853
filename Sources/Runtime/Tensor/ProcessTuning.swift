#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings that suit a long-running inference process. Executables call this
/// once at start; the library never does so on its own, since it changes the host's allocator.
public enum ProcessTuning {
    /// Keeps large activation buffers on the heap instead of mmap/munmap per allocation:
    /// glibc otherwise maps every buffer over 128 KiB fresh, and the kernel zeroes each page on
    /// first touch, which cost ~7% of a U-Net forward.
    public static func configureAllocator() {
        #if os(Linux)
        // <malloc.h> is not in the Glibc module; these are glibc's M_TRIM_THRESHOLD (-1) and
        // M_MMAP_THRESHOLD (-3).
        _ = glibcMallopt(-3, 512 << 20)
        _ = glibcMallopt(-1, 1 << 30)
        #endif
    }
}

#if os(Linux)
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
