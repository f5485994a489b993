#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: ghga-upload
label: Upload one local file as a registered GHGA file id with ghga-cli (resumable)
doc: |
  Runs `ghga-cli upload-by-id --wait`: the step succeeds once the server accepted the
  file. Exit code 75 (transient, or another ghga-cli holds the file) and 130/143
  (interrupted, killed) are temporaryFail: run the step again and it resumes from the
  parts already stored. Every other non-zero code is a permanentFail (65 size/checksum
  mismatch or rejected, 66 input unreadable, 69 API refuses, 73 cannot write the state,
  77 not allowed, 78 config, ...).

  ghga-cli ties its ledger of stored parts (in state_dir) to the source's path as given
  (symlinks not resolved), size, mtime and inode. cwltool hands the tool a new symlink to
  the input on every run (/tmp/RANDOM/stgUUID/NAME), so the tool passes the symlink's
  target to ghga-cli; otherwise a resumed run would send every part again. A runner that
  copies the input instead of linking it gets a fresh upload on every run. (Backticks, not
  $(...): CWL reads $(...) as a parameter reference.)

  state_dir is a plain path (a string, not a Directory) outside the runner's work and
  output dirs, so the runner neither copies nor cleans it. Without a container ghga-cli
  must be on PATH. No JavaScript expressions are used.

requirements:
  NetworkAccess:
    networkAccess: true

baseCommand: [bash, -c]
arguments:
  - position: 0
    valueFrom: |
      api_url=$1 file_id=$2 file=$3 state_dir=$4
      shift 4
      file=`readlink -f -- "$file"` || exit 66
      exec ghga-cli upload-by-id --api-url "$api_url" --file-id "$file_id" \
          --file-path "$file" --state-dir "$state_dir" --json --quiet "$@"
  - position: 1
    valueFrom: ghga-upload

inputs:
  api_url:
    type: string
    doc: Upload Controller API, e.g. https://host/upload
    inputBinding: {position: 2}
  file_id:
    type: string
    doc: The registered file id to upload as.
    inputBinding: {position: 3}
  file:
    type: File
    doc: The local file; its size (and SHA-256, if registered) must match the registration.
    inputBinding: {position: 4}
  state_dir:
    type: string
    doc: Absolute path of ghga-cli's state dir, outside the runner's work and output dirs.
    inputBinding: {position: 5}
  wait:
    type: boolean
    default: true
    doc: Wait until the server accepted the file (--wait).
    inputBinding: {position: 6, prefix: --wait}
  extra_args:
    type: string[]?
    doc: More ghga-cli flags, e.g. [--parallel, "8"].
    inputBinding: {position: 7}

stdout: ghga-receipt.json

outputs:
  receipt:
    type: File
    doc: ghga-cli's --json line (upload_id, status, sha256, bytes moved and resumed).
    outputBinding:
      glob: ghga-receipt.json

successCodes: [0]
temporaryFailCodes: [75, 130, 143]
