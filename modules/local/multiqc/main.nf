process MULTIQC {
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/multiqc:1.35--pyhdfd78af_0' :
        'biocontainers/multiqc:1.35--pyhdfd78af_0' }"

    input:
    path multiqc_files, stageAs: '?/*'
    path multiqc_config

    output:
    path "*multiqc_report.html", emit: report
    path "*_data"              , emit: data
    // not into the topic 'versions': MULTIQC waits for that channel to close, which it would never do
    tuple val("${task.process}"), val('multiqc'), eval('multiqc --version | sed "s/^multiqc, version //"'), emit: versions_multiqc

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    multiqc \\
        --force \\
        --config '${multiqc_config}' \\
        ${args} \\
        .
    """

    stub:
    """
    mkdir multiqc_data
    touch multiqc_report.html
    """
}
