process DEEPIMPUTE_IMPUTE {
    tag "${meta.id}:${chunk.baseName}"
    label 'process_single'

    input:
    tuple val(meta), path(chunk), path(model)

    output:
    tuple val(meta), path("*.imputed.loom"), emit: loom
    path "versions.yml"                    , emit: versions

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

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${chunk.baseName}"
    """
    touch '${prefix}.imputed.loom'

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """
}
