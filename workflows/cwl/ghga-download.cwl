#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: ghga-download
label: Download one GHGA file by id with ghga-cli (resumable, SHA-256 verified)
doc: |
  Runs `ghga-cli download-by-id`. Exit code 75 (transient: the server is unreachable,
  staging took longer than --max-wait, ...) and 130/143 (interrupted, killed) are reported
  as temporaryFail, so a runner that retries (Toil, Arvados, a shell loop around cwltool)
  runs the step again and it resumes; every other non-zero code is a permanentFail
  (65 integrity, 69 API refuses, 73 cannot write, 77 not allowed, 78 config, ...).

  A CWL step runs in a fresh output directory that the runner throws away when the step
  fails, so the partial file must not live there: ghga-cli downloads into
  STATE_DIR/staging/ and keeps its ledger in STATE_DIR, and only the verified file is moved
  into the step's output directory (a rename when both are on one filesystem). Give the
  same state_dir to every run; it is a plain path (a string, not a Directory) so the runner
  neither copies nor cleans it. Without a container (cwltool's default for this tool, which
  has no DockerRequirement) ghga-cli must be on PATH. No JavaScript expressions are used,
  so no nodejs is needed.

requirements:
  NetworkAccess:
    networkAccess: true

baseCommand: [bash, -c]
arguments:
  - position: 0
    valueFrom: |
      api_url=$1 file_id=$2 state_dir=$3
      shift 3
      staging=$state_dir/staging
      mkdir -p "$staging" || exit 73
      ghga-cli download-by-id --api-url "$api_url" --file-id "$file_id" \
          --output-dir "$staging" --state-dir "$state_dir" --json --quiet "$@" || exit
      mv -f "$staging/$file_id" "./$file_id" || exit 73
  - position: 1
    valueFrom: ghga-download

inputs:
  api_url:
    type: string
    doc: DRS3 API base URL, e.g. https://host/ga4gh/drs/v1
    inputBinding: {position: 2}
  file_id:
    type: string
    doc: The DRS object id; the output file is named after it.
    inputBinding: {position: 3}
  state_dir:
    type: string
    doc: Absolute path of ghga-cli's state dir, outside the runner's work and output dirs.
    inputBinding: {position: 4}
  extra_args:
    type: string[]?
    doc: More ghga-cli flags, e.g. [--parallel, "8", --max-wait, "7200"].
    inputBinding: {position: 5}

stdout: ghga-receipt.json

outputs:
  file:
    # Optional only so that cwltool reports a failed step as temporaryFail or permanentFail
    # by its exit code: cwltool collects outputs even after a failure, and a missing
    # required File turns every failure into permanentFail. After exit 0 it is always there.
    type: File?
    doc: The downloaded file, verified against the SHA-256 the server published.
    outputBinding:
      glob: $(inputs.file_id)
  receipt:
    type: File
    doc: ghga-cli's --json line (size, sha256, bytes moved and resumed).
    outputBinding:
      glob: ghga-receipt.json

successCodes: [0]
temporaryFailCodes: [75, 130, 143]
