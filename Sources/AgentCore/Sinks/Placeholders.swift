// Placeholders until the syslog and formats branches merge; removed at the merge.
extension OutputFormat {
    public func makeFormatter() -> any RecordFormatter { NativeFormatter() }
}
