import AgentRecords

/// `CaptureBuilder` (ReplayTestSupport.swift) reads the trigger's process with the replay's old
/// parser name; the one reader is `JSONTree` now. Goes when the builder is replaced by the
/// real Recorder.
typealias CaptureJSON = JSONTree
