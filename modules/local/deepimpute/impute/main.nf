process DEEPIMPUTE_IMPUTE {
    tag "${meta.id}:${chunk.baseName}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/deepimpute-tool:0.1.0--pyhdfd78af_0' :
        'biocontainers/deepimpute-tool:0.1.0--pyhdfd78af_0' }"

    input:
    tuple val(meta), path(chunk), path(model)

    output:
    tuple val(meta), path("*.imputed.loom"), emit: loom
    tuple val("${task.process}"), val('deepimpute'), eval('deepimpute --version | sed "s/^deepimpute, version //"'), emit: versions_deepimpute, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${chunk.baseName}"
    """
    deepimpute-impute \\
        '${chunk}' \\
        '${model}' \\
        '${prefix}.imputed.loom' \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${chunk.baseName}"
    """
    touch '${prefix}.imputed.loom'
    """
}
