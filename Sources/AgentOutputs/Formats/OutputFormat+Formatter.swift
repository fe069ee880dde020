extension OutputFormat {
    /// A new formatter for this format; each sink worker owns its own (they keep state).
    package func makeFormatter() -> any RecordFormatter {
        switch self {
        case .native: NativeFormatter()
        case .ecs: ECSFormatter()
        case .ocsf: OCSFFormatter()
        }
    }
}
