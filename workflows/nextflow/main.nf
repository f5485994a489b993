#!/usr/bin/env nextflow
/*
 * Download GHGA files with ghga-cli, count their bytes and lines, and optionally upload a
 * file: an example of calling ghga-cli from Nextflow (DSL2). See ../README.md#nextflow.
 *
 *   nextflow run workflows/nextflow/main.nf \
 *       --drs_api https://host/ga4gh/drs/v1 --file_ids GHGAF1,GHGAF2 \
 *       --ghga_state_dir /shared/ghga-state
 *   nextflow run workflows/nextflow/main.nf --upload_api https://host/upload \
 *       --upload_id GHGAF3 --upload_file sample3.bam --ghga_state_dir /shared/ghga-state
 *
 * Not run in this project's CI: Nextflow's launcher downloads its runtime from the
 * internet, which the build machines cannot reach. The Snakemake and CWL examples next to
 * this one run in the tests against the reference server.
 *
 * Retry policy (nextflow.config, label 'ghga'): exit 75 (transient), 130 (interrupted) and
 * 143 (killed with SIGTERM) are retried, with a growing pause; the retry runs in a new work
 * dir but resumes from --ghga_state_dir. Any other exit code terminates the run.
 *
 * GHGA files are fetched by a process running ghga-cli, not given as drs:// paths: the
 * DRS code of the nf-ga4gh plugin does not wait while GHGA stages a file (202 +
 * Retry-After); see ../README.md, "Nextflow's nf-ga4gh plugin and DRS staging".
 */

nextflow.enable.dsl = 2

params.drs_api        = null
params.file_ids       = ''            // comma-separated ids to download
params.upload_api     = null
params.upload_id      = null          // the registered id to upload --upload_file as
params.upload_file    = null
params.ghga_state_dir = "${launchDir}/ghga-state"  // NOT in work/: see nextflow.config
params.ghga_args      = ''            // more ghga-cli flags, e.g. '--parallel 8'
params.outdir         = 'results'

process GHGA_DOWNLOAD {
    tag "${file_id}"
    label 'ghga'

    input:
    val file_id

    output:
    tuple val(file_id), path("${file_id}"), emit: files
    path "${file_id}.ghga.json", emit: receipt

    script:
    // Each attempt gets a new work dir, so the partial file must not live there: download
    // into the state dir's staging/ and move only the verified file into the work dir.
    """
    staging='${params.ghga_state_dir}/staging'
    mkdir -p "\$staging" || exit 73
    ghga-cli download-by-id --api-url '${params.drs_api}' --file-id '${file_id}' \\
        --output-dir "\$staging" --state-dir '${params.ghga_state_dir}' \\
        --json --quiet ${params.ghga_args} > '${file_id}.ghga.json'
    mv -f "\$staging/${file_id}" '${file_id}' || exit 73
    """
}

process GHGA_UPLOAD {
    tag "${file_id}"
    label 'ghga'

    input:
    tuple val(file_id), path(source)

    output:
    path "${file_id}.upload.json"

    script:
    // ghga-cli ties its ledger of stored parts to the source's path as given (symlinks not
    // resolved), size, mtime and inode. Each attempt runs in a new work dir with a new
    // symlink to the file, so pass the symlink's target: then a retry resumes instead of
    // sending every part again. (With stageInMode 'copy' each attempt has a new copy and
    // the upload starts over.)
    """
    src=\$(readlink -f '${source}') || exit 66
    ghga-cli upload-by-id --api-url '${params.upload_api}' --file-id '${file_id}' \\
        --file-path "\$src" --state-dir '${params.ghga_state_dir}' \\
        --wait --json --quiet ${params.ghga_args} > '${file_id}.upload.json'
    """
}

process COUNT {
    tag "${file_id}"
    publishDir params.outdir, mode: 'copy'

    input:
    tuple val(file_id), path(data)

    output:
    path "${file_id}.counts.tsv"

    script:
    """
    printf 'file_id\\tbytes\\tlines\\tsha256\\n%s\\t%s\\t%s\\t%s\\n' '${file_id}' \\
        "\$(wc -c < '${data}')" "\$(wc -l < '${data}')" \\
        "\$(sha256sum '${data}' | cut -d' ' -f1)" > '${file_id}.counts.tsv'
    """
}

workflow {
    def ids = params.file_ids.toString().tokenize(',')*.trim().findAll { it }
    if (ids && !params.drs_api) {
        error "--file_ids needs --drs_api"
    }
    if (params.upload_file && !(params.upload_api && params.upload_id)) {
        error "--upload_file needs --upload_api and --upload_id"
    }
    if (!ids && !params.upload_file) {
        error "nothing to do: give --file_ids and/or --upload_file"
    }

    if (ids) {
        GHGA_DOWNLOAD(Channel.fromList(ids))
        COUNT(GHGA_DOWNLOAD.out.files)
    }
    if (params.upload_file) {
        GHGA_UPLOAD(Channel.of([params.upload_id, file(params.upload_file, checkIfExists: true)]))
    }
}
