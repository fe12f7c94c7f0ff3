process DEEPIMPUTE_SPLIT {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("chunks/*.loom"), emit: chunks
    path "versions.yml"                   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    deepimpute-split \\
        '${loom}' \\
        chunks \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir chunks
    touch 'chunks/${prefix}.chunk0001.loom'

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """
}
