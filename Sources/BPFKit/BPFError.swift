import Glibc

/// A failed libbpf or kernel call, named, with the errno it returned.
public struct BPFError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Turns a libbpf return (negative errno on failure) into a thrown `BPFError`.
@discardableResult
public func check(_ result: Int32, _ call: @autoclosure () -> String) throws(BPFError) -> Int32 {
    if result < 0 { throw BPFError(call(), errno: -result) }
    return result
}

/// Turns a libbpf pointer return (NULL with errno set on failure) into a thrown `BPFError`.
public func check<T>(_ pointer: T?, _ call: @autoclosure () -> String) throws(BPFError) -> T {
    guard let pointer else { throw BPFError(call(), errno: Glibc.errno == 0 ? EINVAL : Glibc.errno) }
    return pointer
}
