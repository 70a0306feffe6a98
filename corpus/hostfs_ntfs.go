package corpus

func buildNTFS(spec Spec, files []hostFile, tmp string) (*volume, error) {
	return nil, specErr("ntfs: not yet")
}

func mkntfs(path string, h *HostSpec, quick bool) error { return nil }
