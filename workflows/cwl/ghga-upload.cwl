#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: ghga-upload
label: Upload one local file as a registered GHGA file id with ghga-cli (resumable)
doc: |
  Runs `ghga-cli upload-by-id --wait`: the step succeeds once the server accepted the
  file. Exit code 75 (transient) and 130/143 (interrupted, killed) are temporaryFail: run
  the step again and it resumes from the parts already stored (the part ledger is in
  state_dir, keyed by API and file id, so it does not matter that the runner stages the
  input file at another path each time). Every other non-zero code is a permanentFail
  (65 size/checksum mismatch or rejected, 66 input unreadable, 69 API refuses, 77 not
  allowed, 78 config, ...).

  state_dir is a plain path (a string, not a Directory) outside the runner's work and
  output dirs, so the runner neither copies nor cleans it. Without a container ghga-cli
  must be on PATH. No JavaScript expressions are used.

requirements:
  NetworkAccess:
    networkAccess: true

baseCommand: [ghga-cli, upload-by-id]
arguments: [--json, --quiet]

inputs:
  api_url:
    type: string
    doc: Upload Controller API, e.g. https://host/upload
    inputBinding: {prefix: --api-url}
  file_id:
    type: string
    doc: The registered file id to upload as.
    inputBinding: {prefix: --file-id}
  file:
    type: File
    doc: The local file; its size (and SHA-256, if registered) must match the registration.
    inputBinding: {prefix: --file-path}
  state_dir:
    type: string
    doc: Absolute path of ghga-cli's state dir, outside the runner's work and output dirs.
    inputBinding: {prefix: --state-dir}
  wait:
    type: boolean
    default: true
    doc: Wait until the server accepted the file (--wait).
    inputBinding: {prefix: --wait}
  extra_args:
    type: string[]?
    doc: More ghga-cli flags, e.g. [--parallel, "8"].
    inputBinding: {position: 10}

stdout: ghga-receipt.json

outputs:
  receipt:
    type: File
    doc: ghga-cli's --json line (upload_id, status, sha256, bytes moved and resumed).
    outputBinding:
      glob: ghga-receipt.json

successCodes: [0]
temporaryFailCodes: [75, 130, 143]
