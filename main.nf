#!/usr/bin/env nextflow
/*
 * DeepImpute: impute dropout zeros in single-cell RNA-seq counts (Arisdakessian et al. 2019,
 * doi:10.1186/s13059-019-1837-6), scaled out with Nextflow: one model per sample, trained once,
 * and imputation scattered over chunks of cells, gathered back into one Loom per sample.
 *
 *   nextflow run main.nf --input samplesheet.csv --outdir results -profile docker
 *   nextflow run main.nf --help
 */

include { paramsHelp; validateParameters; paramsSummaryLog; samplesheetToList } from 'plugin/nf-schema'
include { DEEPIMPUTE } from './workflows/deepimpute'

/*
 * --input: a samplesheet CSV (columns sample,path, checked against assets/schema_input.json),
 * or a Loom file or glob of them (the sample is the file name up to its first dot).
 */
def samples(input) {
    def ch_samples = input.toString().endsWith('.csv')
        ? channel.fromList(samplesheetToList(input, "${projectDir}/assets/schema_input.json"))
        : channel.fromPath(input, checkIfExists: true).map { counts -> [[id: counts.simpleName], counts] }
    // a sample name becomes part of file names and shell commands: letters, digits, '.', '_', '-' only
    return ch_samples.map { meta, counts ->
        if (!(meta.id ==~ /^[A-Za-z0-9][A-Za-z0-9_.-]*$/)) {
            error("Sample name '${meta.id}' is refused: use letters, digits, '.', '_' and '-' only, starting with a letter or digit")
        }
        [meta, counts]
    }
}

workflow {
    main:
    if (params.help) {
        log.info(paramsHelp('nextflow run main.nf --input samplesheet.csv --outdir results -profile docker'))
    }
    else {
        validateParameters()
        log.info(paramsSummaryLog(workflow))

        def model = params.model ? file(params.model, checkIfExists: true) : []
        DEEPIMPUTE(samples(params.input), model, params.evaluate)

        // every module's version, from the topic channel the modules emit into: [process, tool, version]
        channel.topic('versions')
            .map { process, tool, version -> "\"${process.tokenize(':').last()}\":\n    ${tool}: ${version}" }
            .unique()
            .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: true)
    }
}
