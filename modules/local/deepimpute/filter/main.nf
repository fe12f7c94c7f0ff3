process DEEPIMPUTE_FILTER {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/deepimpute-tool:0.1.0--pyhdfd78af_0' :
        'biocontainers/deepimpute-tool:0.1.0--pyhdfd78af_0' }"

    input:
    tuple val(meta), path(counts)

    output:
    tuple val(meta), path("*.filtered.loom"), emit: loom
    tuple val(meta), path("*.qc.png")       , emit: qc_plot
    tuple val("${task.process}"), val('deepimpute'), eval('deepimpute --version | sed "s/^deepimpute, version //"'), emit: versions_deepimpute, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-filter \\
        '${counts}' \\
        '${prefix}.filtered.loom' \\
        --qc-plot '${prefix}.qc.png' \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.filtered.loom' '${prefix}.qc.png'
    """
}
