process DEEPIMPUTE_SCORE {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/deepimpute-tool:0.1.0--pyhdfd78af_0' :
        'biocontainers/deepimpute-tool:0.1.0--pyhdfd78af_0' }"

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("*.scores.json"), emit: scores
    tuple val(meta), path("*.plots")      , emit: plots
    tuple val("${task.process}"), val('deepimpute'), eval('deepimpute --version | sed "s/^deepimpute, version //"'), emit: versions_deepimpute, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-score \\
        '${loom}' \\
        --output '${prefix}.scores.json' \\
        --plots '${prefix}.plots' \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir '${prefix}.plots'
    echo '{}' > '${prefix}.scores.json'
    """
}
