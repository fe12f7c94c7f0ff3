#!/usr/bin/env nextflow
/*
 * DeepImpute: impute dropout zeros in single-cell RNA-seq counts (Arisdakessian et al. 2019,
 * doi:10.1186/s13059-019-1837-6), scaled out with Nextflow: one model per sample, trained once,
 * and imputation scattered over chunks of cells, gathered back into one Loom per sample.
 *
 *   nextflow run main.nf --input samplesheet.csv --outdir results -profile docker
 *   nextflow run main.nf --help
 */

include { paramsHelp; validateParameters; paramsSummaryLog; paramsSummaryMap; samplesheetToList } from 'plugin/nf-schema'
include { DEEPIMPUTE } from './workflows/deepimpute'
include { MULTIQC    } from './modules/local/multiqc/main'

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

/*
 * The parameters a run was given, by group, as MultiQC custom content (a section of HTML).
 */
def escapeHtml(text) {
    return text.toString().replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
}

def parametersSummary(summary) {
    def header = [
        "id: 'deepimpute-tool-summary'",
        "section_name: 'deepimpute-tool: parameters'",
        "description: 'The parameters this run was given.'",
        "plot_type: 'html'",
        'data: |',
        '    <dl class="dl-horizontal">',
    ]
    def rows = summary.collectMany { _group, values ->
        values.collect { name, value -> "        <dt>${escapeHtml(name)}</dt><dd><samp>${escapeHtml(value)}</samp></dd>".toString() }
    }
    return (header + rows + ['    </dl>']).join('\n') + '\n'
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
        ch_versions = channel.topic('versions')
            .map { process, tool, version -> "\"${process.tokenize(':').last()}\":\n    ${tool}: ${version}" }
            .unique()
            .collectFile(name: 'deepimpute_software_mqc_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: true)

        // one report for every sample: DeepImpute's sections, the versions and the parameters
        ch_summary = channel.value(parametersSummary(paramsSummaryMap(workflow)))
            .collectFile(name: 'deepimpute_parameters_mqc.yaml')
        MULTIQC(
            DEEPIMPUTE.out.multiqc_files
                .flatMap { _meta, files -> files }
                .mix(ch_versions, ch_summary)
                .collect(),
            file("${projectDir}/assets/multiqc_config.yml", checkIfExists: true),
        )
    }
}
