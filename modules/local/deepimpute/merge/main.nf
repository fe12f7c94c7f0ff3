process DEEPIMPUTE_MERGE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(chunks, stageAs: 'chunks/*')

    output:
    tuple val(meta), path("*.imputed.loom"), emit: loom
    path "versions.yml"                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-merge \\
        '${prefix}.imputed.loom' \\
        chunks/*.loom \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.imputed.loom'

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """
}
