#!/usr/bin/env nextflow
/*
 * DeepImpute: impute dropout zeros in single-cell RNA-seq counts (Arisdakessian et al. 2019,
 * doi:10.1186/s13059-019-1837-6), scaled out with Nextflow: one model per sample, trained once,
 * and imputation scattered over chunks of cells, gathered back into one Loom per sample.
 *
 *   nextflow run main.nf --input data.loom --outdir results -profile docker
 *
 * Every process calls only the executables in bin/ (on PATH in every task).
 */

process FILTER {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(counts)

    output:
    tuple val(meta), path("${meta.id}.filtered.loom"), emit: loom
    path "versions.yml", emit: versions

    script:
    def args = "--min-genes ${params.min_genes} --min-counts ${params.min_counts} --min-cells ${params.min_cells}"
    """
    deepimpute-filter '${counts}' '${meta.id}.filtered.loom' ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    touch '${meta.id}.filtered.loom'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

process MASK {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("${meta.id}.masked.loom"), emit: loom
    path "versions.yml", emit: versions

    script:
    """
    deepimpute-mask '${loom}' '${meta.id}.masked.loom' --cells-per-gene ${params.cells_per_gene} --seed ${params.seed}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    touch '${meta.id}.masked.loom'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

process TRAIN {
    tag "${meta.id}"
    label 'process_high'
    label 'process_gpu'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("${meta.id}.model"), emit: model
    path "versions.yml", emit: versions

    script:
    def max_genes = params.max_genes ? "--max-genes ${params.max_genes}" : ''
    """
    deepimpute-train '${loom}' '${meta.id}.model' \\
        --min-vmr ${params.min_vmr} ${max_genes} \\
        --subset-size ${params.subset_size} \\
        --subset-split ${params.subset_split} \\
        --ensemble ${params.ensemble} \\
        --ntop ${params.ntop} \\
        --hidden ${params.hidden} \\
        --dropout ${params.dropout} \\
        --learning-rate ${params.learning_rate} \\
        --coarse-learning-rate ${params.coarse_learning_rate} \\
        --coarse-patience ${params.coarse_patience} \\
        --batch-size ${params.batch_size} \\
        --max-epochs ${params.max_epochs} \\
        --patience ${params.patience} \\
        --cell-fraction ${params.cell_fraction} \\
        --normalisation ${params.normalisation} \\
        --target-sum ${params.target_sum} \\
        --seed ${params.seed} \\
        --device ${params.device} \\
        --precision ${params.precision} \\
        --cores ${task.cpus}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    mkdir '${meta.id}.model'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

process SPLIT {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("chunks/*.loom"), emit: chunks
    path "versions.yml", emit: versions

    script:
    """
    deepimpute-split '${loom}' chunks --chunk-size ${params.chunk_size}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    mkdir chunks
    touch 'chunks/${meta.id}.chunk0001.loom'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

process IMPUTE {
    tag "${meta.id}:${chunk.baseName}"
    label 'process_medium'

    input:
    tuple val(meta), path(chunk), path(model)

    output:
    tuple val(meta), path("${chunk.baseName}.imputed.loom"), emit: loom
    path "versions.yml", emit: versions

    script:
    """
    deepimpute-impute '${chunk}' '${model}' '${chunk.baseName}.imputed.loom' --policy ${params.policy}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    touch '${chunk.baseName}.imputed.loom'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

process MERGE {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(chunks, stageAs: 'chunks/*')

    output:
    tuple val(meta), path("${meta.id}.imputed.loom"), emit: loom
    path "versions.yml", emit: versions

    script:
    """
    deepimpute-merge '${meta.id}.imputed.loom' chunks/*.loom

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    touch '${meta.id}.imputed.loom'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

process SCORE {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("${meta.id}.scores.json"), emit: scores
    tuple val(meta), path("${meta.id}.plots"), emit: plots
    path "versions.yml", emit: versions

    script:
    def labels = params.labels ? "--labels '${params.labels}'" : ''
    """
    deepimpute-score '${loom}' --output '${meta.id}.scores.json' --plots '${meta.id}.plots' --seed ${params.seed} ${labels}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        deepimpute: \$(deepimpute --version | sed 's/^deepimpute, version //')
    END_VERSIONS
    """

    stub:
    """
    mkdir '${meta.id}.plots'
    echo '{}' > '${meta.id}.scores.json'
    echo '"${task.process}": {deepimpute: stub}' > versions.yml
    """
}

/*
 * --input: one Loom, a glob of Looms, or a samplesheet CSV with columns sample,path.
 */
def samples(input) {
    if (input.toString().endsWith('.csv')) {
        return channel.fromPath(input, checkIfExists: true)
            .splitCsv(header: true)
            .map { row -> [[id: row.sample], file(row.path, checkIfExists: true)] }
    }
    return channel.fromPath(input, checkIfExists: true)
        .map { counts -> [[id: counts.simpleName], counts] }
}

workflow {
    if (!params.input) {
        error "Give --input: a Loom file, a glob of Loom files, or a samplesheet CSV (sample,path)"
    }

    FILTER(samples(params.input))
    ch_versions = FILTER.out.versions

    ch_ready = FILTER.out.loom
    if (params.evaluate) {
        MASK(FILTER.out.loom)
        ch_ready = MASK.out.loom
        ch_versions = ch_versions.mix(MASK.out.versions)
    }

    if (params.model) {
        ch_model = ch_ready.map { meta, _loom -> [meta, file(params.model, checkIfExists: true)] }
    }
    else {
        TRAIN(ch_ready)
        ch_model = TRAIN.out.model
        ch_versions = ch_versions.mix(TRAIN.out.versions)
    }

    SPLIT(ch_ready)
    ch_chunks = SPLIT.out.chunks.transpose()
    IMPUTE(ch_chunks.combine(ch_model, by: 0))
    MERGE(IMPUTE.out.loom.groupTuple())
    ch_versions = ch_versions.mix(SPLIT.out.versions, IMPUTE.out.versions.first(), MERGE.out.versions)

    if (params.evaluate) {
        SCORE(MERGE.out.loom)
        ch_versions = ch_versions.mix(SCORE.out.versions)
    }

    ch_versions
        .unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
}
