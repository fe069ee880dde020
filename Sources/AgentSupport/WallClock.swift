import Glibc

/// Converts CLOCK_BOOTTIME nanoseconds, which the kernel stamps records with, into Unix time.
/// Boot time keeps counting through suspend, so the offset holds across a laptop's sleep.
package struct WallClock {
    package private(set) var offsetNs: Int64 = 0

    package init() { refresh() }

    /// A clock whose boot time 0 is `offsetNs` in Unix time: replays and tests that must repeat.
    package init(offsetNs: Int64) { self.offsetNs = offsetNs }

    package mutating func refresh() {
        var real = timespec(), boot = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        offsetNs = (Int64(real.tv_sec) - Int64(boot.tv_sec)) * 1_000_000_000 + (Int64(real.tv_nsec) - Int64(boot.tv_nsec))
    }

    package func wall(bootNs: UInt64) -> Int64 { Int64(bitPattern: bootNs) &+ offsetNs }

    package static func bootNow() -> UInt64 {
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        return UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec)
    }

    /// CLOCK_MONOTONIC in ns: intervals, deadlines and timers.
    package static func monotonicNs() -> Int64 { nanoseconds(CLOCK_MONOTONIC) }

    /// CLOCK_REALTIME in ns: wall time where no boot-time conversion is at hand.
    package static func realtimeNs() -> Int64 { nanoseconds(CLOCK_REALTIME) }

    private static func nanoseconds(_ clock: clockid_t) -> Int64 {
        var t = timespec()
        clock_gettime(clock, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }
}
